-- depends: 0004_child_order
-- The place of each job in its event's jobs (the order they were requested in), so the
-- API's PostgreSQL read path lists them as the Redis document does, also when two were
-- requested in the same millisecond.
ALTER TABLE jobs ADD COLUMN position INT NOT NULL DEFAULT 0;
