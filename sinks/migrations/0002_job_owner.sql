-- depends: 0001_erd
-- Who a job belongs to, so GET /api/events/jobs/{jobId}/status can answer from PostgreSQL
-- (jobs outlive their events, so the owner cannot come from a join).
ALTER TABLE jobs ADD COLUMN user_id UUID;
ALTER TABLE generated_images ADD COLUMN job_id UUID;
-- The AI's trend analysis of the current recommendation set (seed 004).
ALTER TABLE events ADD COLUMN trend_analysis JSONB;
