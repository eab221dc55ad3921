-- depends: 0005_job_order
-- One batch of the projection in one statement (sinks/postgres.py). Each table's rows come
-- as one JSON array of objects named as the state names them, read by `json_to_recordset`
-- in one pass: one round trip and one plan per table a batch, no row bound by the client.

-- Epoch milliseconds (UTC) as the TIMESTAMP columns hold them, exactly (no float).
CREATE FUNCTION epoch_ms_to_timestamp(ms BIGINT) RETURNS TIMESTAMP
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN TIMESTAMP '1970-01-01' + ms * INTERVAL '1 millisecond';

-- Jobs (of these events only, when given), each replaced only by a newer state's version.
CREATE FUNCTION project_jobs(jobs JSON, of_events UUID[] DEFAULT NULL) RETURNS VOID
LANGUAGE sql AS $$
    INSERT INTO jobs (job_id, event_id, job_type, status, progress, error_message,
                      completed_at, created_at, updated_at, version, user_id, position)
    SELECT j."jobId", j."eventId", j."jobType", j.status, j.progress, j.error,
           epoch_ms_to_timestamp(j."completedAt"), epoch_ms_to_timestamp(j."createdAt"),
           epoch_ms_to_timestamp(j."updatedAt"), j.version, j."userId", j.position
    FROM json_to_recordset(jobs) AS j(
        "jobId" UUID, "eventId" UUID, "jobType" TEXT, status TEXT, progress INT, error TEXT,
        "completedAt" BIGINT, "createdAt" BIGINT, "updatedAt" BIGINT, version BIGINT,
        "userId" UUID, position INT)
    WHERE of_events IS NULL OR j."eventId" = ANY (of_events)
    ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status,
        progress = EXCLUDED.progress, error_message = EXCLUDED.error_message,
        completed_at = EXCLUDED.completed_at, updated_at = EXCLUDED.updated_at,
        version = EXCLUDED.version
    WHERE jobs.version < EXCLUDED.version
$$;

-- Upsert the states' rows (never going back in version); replace the children of the rows
-- just written, and their jobs; delete the discarded events; record the outcomes (once per
-- commandId). The children and jobs come for every state of `events`: only those of the
-- rows written are kept, so a replayed state leaves its children alone.
CREATE FUNCTION project_batch(events JSON, recommendations JSON, images JSON, jobs JSON,
                              deleted UUID[], outcomes JSON) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    written UUID[];  -- the events whose row this batch wrote (newer than the stored one)
BEGIN
    WITH upserted AS (
        INSERT INTO events (event_id, user_id, store_id, event_name, description, objective,
                            start_date, end_date, status, selected_image_id,
                            selected_image_url, channels, created_at, updated_at, store_name,
                            industry, address, selected_recommendation_id,
                            distribution_results, published_at, ended_at, version,
                            trend_analysis)
        SELECT s."eventId", s."userId", s."storeId", s."eventName", s.description,
               s.objective, s."startDate", s."endDate", s.status, s."selectedImageId",
               s."selectedImageUrl", COALESCE(s.channels, '[]'),
               epoch_ms_to_timestamp(s."createdAt"), epoch_ms_to_timestamp(s."updatedAt"),
               s."storeName", s.industry, s.address, s."selectedRecommendationId",
               COALESCE(s."distributionResults", '[]'),
               epoch_ms_to_timestamp(s."publishedAt"), epoch_ms_to_timestamp(s."endedAt"),
               s.version, s."trendAnalysis"
        FROM json_to_recordset(events) AS s(
            "eventId" UUID, "userId" UUID, "storeId" UUID, "eventName" TEXT,
            description TEXT, objective TEXT, "startDate" DATE, "endDate" DATE, status TEXT,
            "selectedImageId" UUID, "selectedImageUrl" TEXT, channels TEXT,
            "createdAt" BIGINT, "updatedAt" BIGINT, "storeName" TEXT, industry TEXT,
            address TEXT, "selectedRecommendationId" UUID, "distributionResults" JSONB,
            "publishedAt" BIGINT, "endedAt" BIGINT, version BIGINT, "trendAnalysis" JSONB)
        ON CONFLICT (event_id) DO UPDATE SET
            user_id = EXCLUDED.user_id, store_id = EXCLUDED.store_id,
            event_name = EXCLUDED.event_name, description = EXCLUDED.description,
            objective = EXCLUDED.objective, start_date = EXCLUDED.start_date,
            end_date = EXCLUDED.end_date, status = EXCLUDED.status,
            selected_image_id = EXCLUDED.selected_image_id,
            selected_image_url = EXCLUDED.selected_image_url, channels = EXCLUDED.channels,
            created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
            store_name = EXCLUDED.store_name, industry = EXCLUDED.industry,
            address = EXCLUDED.address,
            selected_recommendation_id = EXCLUDED.selected_recommendation_id,
            distribution_results = EXCLUDED.distribution_results,
            published_at = EXCLUDED.published_at, ended_at = EXCLUDED.ended_at,
            version = EXCLUDED.version, trend_analysis = EXCLUDED.trend_analysis
        -- Never go backwards: a replayed or late older state leaves the newer row alone.
        WHERE events.version < EXCLUDED.version
        RETURNING event_id
    )
    SELECT array_agg(event_id) INTO written FROM upserted;

    IF written IS NOT NULL THEN
        DELETE FROM ai_recommendations WHERE event_id = ANY (written);
        DELETE FROM generated_images WHERE event_id = ANY (written);
        INSERT INTO ai_recommendations (recommendation_id, event_id, event_name, description,
                                        promotion_type, target_audience, is_selected,
                                        created_at, updated_at, prize, method, cost, roi,
                                        position)
        SELECT r."recommendationId", r."eventId", r.title, r.description, r."promotionType",
               r."targetAudience", r."isSelected", epoch_ms_to_timestamp(r."updatedAt"),
               epoch_ms_to_timestamp(r."updatedAt"), r.prize, r.method, r.cost, r.roi,
               r.position
        FROM json_to_recordset(recommendations) AS r(
            "recommendationId" UUID, "eventId" UUID, title TEXT, description TEXT,
            "promotionType" TEXT, "targetAudience" TEXT, "isSelected" BOOLEAN,
            "updatedAt" BIGINT, prize TEXT, method TEXT, cost TEXT, roi TEXT, position INT)
        WHERE r."eventId" = ANY (written);
        INSERT INTO generated_images (image_id, event_id, image_url, style, platform,
                                      is_selected, created_at, updated_at, job_id, position)
        SELECT i."imageId", i."eventId", i."imageUrl", i.style, i.platform, i."isSelected",
               epoch_ms_to_timestamp(i."updatedAt"), epoch_ms_to_timestamp(i."updatedAt"),
               i."jobId", i.position
        FROM json_to_recordset(images) AS i(
            "imageId" UUID, "eventId" UUID, "imageUrl" TEXT, style TEXT, platform TEXT,
            "isSelected" BOOLEAN, "updatedAt" BIGINT, "jobId" UUID, position INT)
        WHERE i."eventId" = ANY (written);
        PERFORM project_jobs(jobs, written);
    END IF;

    DELETE FROM events WHERE event_id = ANY (deleted);

    INSERT INTO command_outcomes (command_id, event_id, user_id, command_type, status, code,
                                  message, details, event_version, decided_at)
    SELECT o."commandId", o."eventId", o."userId", o."commandType", o.status, o.code,
           o.message, COALESCE(o.details, '[]'), o."eventVersion",
           epoch_ms_to_timestamp(o."decidedAt")
    FROM json_to_recordset(outcomes) AS o(
        "commandId" UUID, "eventId" UUID, "userId" UUID, "commandType" TEXT, status TEXT,
        code TEXT, message TEXT, details JSONB, "eventVersion" BIGINT, "decidedAt" BIGINT)
    ON CONFLICT (command_id) DO NOTHING;
END
$$;
