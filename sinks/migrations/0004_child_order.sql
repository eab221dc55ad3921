-- depends: 0003_distribution_log
-- The place of each recommendation and image in its event, as the state lists them, so the
-- API's PostgreSQL read path shows them in the same order as the Redis document.
ALTER TABLE ai_recommendations ADD COLUMN position SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE generated_images ADD COLUMN position SMALLINT NOT NULL DEFAULT 0;
