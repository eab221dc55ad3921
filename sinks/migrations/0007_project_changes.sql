-- depends: 0006_project_batch
-- A batch writes only the child rows that changed. Most states change their event's row
-- alone (dates, channels, a job's progress, publish, end), yet 0006 deleted and inserted
-- every recommendation and image of every event it wrote, and updated every job, on each
-- state, with their indexes and foreign-key checks (bench/ANALYSIS.md, "Only the rows that
-- changed"). Now the written events' children that are gone from their state are deleted,
-- the new ones inserted, and the others updated only when a field differs: a row that is
-- the same is left alone (its `updated_at` says when it last changed). A job is updated
-- only when a field of its own changed, so its row keeps the version of the state that last
-- changed it; a replayed state between that version and the newest holds the same job, so
-- the guard still never goes back.
-- `events` holds the events' own fields only (0006 was sent the whole states, children
-- included, and parsed them), and a batch's events are matched as a set
-- (`IN (SELECT unnest(...))`, hashed), not by `= ANY` of an array for each row.

CREATE OR REPLACE FUNCTION project_jobs(jobs JSON, of_events UUID[] DEFAULT NULL) RETURNS VOID
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
    WHERE of_events IS NULL OR j."eventId" IN (SELECT unnest(of_events))
    ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status,
        progress = EXCLUDED.progress, error_message = EXCLUDED.error_message,
        completed_at = EXCLUDED.completed_at, updated_at = EXCLUDED.updated_at,
        version = EXCLUDED.version
    WHERE jobs.version < EXCLUDED.version
      AND (jobs.status, jobs.progress, jobs.error_message, jobs.completed_at, jobs.updated_at)
          IS DISTINCT FROM (EXCLUDED.status, EXCLUDED.progress, EXCLUDED.error_message,
                            EXCLUDED.completed_at, EXCLUDED.updated_at)
$$;

DROP FUNCTION project_batch(JSON, JSON, JSON, JSON, UUID[], JSON);

-- `children`: the ids of every recommendation and image of the states.
CREATE FUNCTION project_batch(events JSON, recommendations JSON, images JSON, jobs JSON,
                              children UUID[], deleted UUID[], outcomes JSON) RETURNS VOID
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
        -- The written events' children gone from their state.
        DELETE FROM ai_recommendations
        WHERE event_id IN (SELECT unnest(written))
          AND recommendation_id NOT IN (SELECT unnest(children));
        DELETE FROM generated_images
        WHERE event_id IN (SELECT unnest(written))
          AND image_id NOT IN (SELECT unnest(children));
        -- The new ones, and the ones that changed; the same ones are left alone. Those not
        -- selected go first: a selection that moves unselects before it selects, so "one
        -- selected per event" (a unique index) holds after each row.
        INSERT INTO ai_recommendations AS a (recommendation_id, event_id, event_name,
                                             description, promotion_type, target_audience,
                                             is_selected, created_at, updated_at, prize,
                                             method, cost, roi, position)
        SELECT r."recommendationId", r."eventId", r.title, r.description, r."promotionType",
               r."targetAudience", r."isSelected", epoch_ms_to_timestamp(r."updatedAt"),
               epoch_ms_to_timestamp(r."updatedAt"), r.prize, r.method, r.cost, r.roi,
               r.position
        FROM json_to_recordset(recommendations) AS r(
            "recommendationId" UUID, "eventId" UUID, title TEXT, description TEXT,
            "promotionType" TEXT, "targetAudience" TEXT, "isSelected" BOOLEAN,
            "updatedAt" BIGINT, prize TEXT, method TEXT, cost TEXT, roi TEXT, position INT)
        WHERE r."eventId" IN (SELECT unnest(written))
        ORDER BY r."isSelected"
        ON CONFLICT (recommendation_id) DO UPDATE SET event_name = EXCLUDED.event_name,
            description = EXCLUDED.description, promotion_type = EXCLUDED.promotion_type,
            target_audience = EXCLUDED.target_audience, is_selected = EXCLUDED.is_selected,
            updated_at = EXCLUDED.updated_at, prize = EXCLUDED.prize,
            method = EXCLUDED.method, cost = EXCLUDED.cost, roi = EXCLUDED.roi,
            position = EXCLUDED.position
        WHERE (a.event_name, a.description, a.promotion_type, a.target_audience,
               a.is_selected, a.prize, a.method, a.cost, a.roi, a.position)
              IS DISTINCT FROM (EXCLUDED.event_name, EXCLUDED.description,
                                EXCLUDED.promotion_type, EXCLUDED.target_audience,
                                EXCLUDED.is_selected, EXCLUDED.prize, EXCLUDED.method,
                                EXCLUDED.cost, EXCLUDED.roi, EXCLUDED.position);
        INSERT INTO generated_images AS g (image_id, event_id, image_url, style, platform,
                                           is_selected, created_at, updated_at, job_id,
                                           position)
        SELECT i."imageId", i."eventId", i."imageUrl", i.style, i.platform, i."isSelected",
               epoch_ms_to_timestamp(i."updatedAt"), epoch_ms_to_timestamp(i."updatedAt"),
               i."jobId", i.position
        FROM json_to_recordset(images) AS i(
            "imageId" UUID, "eventId" UUID, "imageUrl" TEXT, style TEXT, platform TEXT,
            "isSelected" BOOLEAN, "updatedAt" BIGINT, "jobId" UUID, position INT)
        WHERE i."eventId" IN (SELECT unnest(written))
        ORDER BY i."isSelected"
        ON CONFLICT (image_id) DO UPDATE SET image_url = EXCLUDED.image_url,
            style = EXCLUDED.style, platform = EXCLUDED.platform,
            is_selected = EXCLUDED.is_selected, updated_at = EXCLUDED.updated_at,
            job_id = EXCLUDED.job_id, position = EXCLUDED.position
        WHERE (g.image_url, g.style, g.platform, g.is_selected, g.job_id, g.position)
              IS DISTINCT FROM (EXCLUDED.image_url, EXCLUDED.style, EXCLUDED.platform,
                                EXCLUDED.is_selected, EXCLUDED.job_id, EXCLUDED.position);
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
