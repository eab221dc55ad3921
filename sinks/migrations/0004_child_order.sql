-- depends: 0003_distribution_log
-- The place of each recommendation and image in its event's list, so the API's PostgreSQL
-- read path answers them in the order the Redis document (and the event state) has them.
ALTER TABLE ai_recommendations ADD COLUMN position INT NOT NULL DEFAULT 0;
ALTER TABLE generated_images ADD COLUMN position INT NOT NULL DEFAULT 0;
