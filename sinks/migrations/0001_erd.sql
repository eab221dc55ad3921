-- The four tables of seed 000's ERD, with its CHECKs, indexes and foreign keys,
-- plus the columns the pipeline needs (SPEC 5).

CREATE TABLE events (
    event_id              UUID PRIMARY KEY,
    user_id               UUID NOT NULL,
    store_id              UUID NOT NULL,
    event_name            VARCHAR(200),
    description           TEXT,
    objective             VARCHAR(100) NOT NULL,
    start_date            DATE,
    end_date              DATE,
    status                VARCHAR(20) NOT NULL,
    selected_image_id     UUID,
    selected_image_url    VARCHAR(500),
    channels              TEXT,                  -- JSON array, as the ERD says
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    -- pipeline extras
    store_name            VARCHAR(200) NOT NULL,
    industry              VARCHAR(100) NOT NULL,
    address               VARCHAR(500) NOT NULL,
    selected_recommendation_id UUID,
    distribution_results  JSONB NOT NULL DEFAULT '[]'::jsonb,
    published_at          TIMESTAMP,
    ended_at              TIMESTAMP,
    version               BIGINT NOT NULL,       -- state version: never overwrite newer with older
    CONSTRAINT ck_events_status CHECK (status IN ('DRAFT', 'PUBLISHED', 'ENDED')),
    CONSTRAINT ck_events_dates CHECK (start_date <= end_date)
);
CREATE INDEX "IDX_events_user_id" ON events (user_id);
CREATE INDEX "IDX_events_store_id" ON events (store_id);
CREATE INDEX "IDX_events_status" ON events (status);
CREATE INDEX "IDX_events_user_status" ON events (user_id, status);

CREATE TABLE ai_recommendations (
    recommendation_id     UUID PRIMARY KEY,
    event_id              UUID NOT NULL,
    event_name            VARCHAR(200) NOT NULL,
    description           TEXT NOT NULL,
    promotion_type        VARCHAR(50) NOT NULL,
    target_audience       VARCHAR(100) NOT NULL,
    is_selected           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    -- seed 004's card fields
    prize                 VARCHAR(200),
    method                VARCHAR(200),
    cost                  VARCHAR(100),
    roi                   VARCHAR(100),
    CONSTRAINT "FK_recommendations_event" FOREIGN KEY (event_id)
        REFERENCES events (event_id) ON DELETE CASCADE
);
CREATE INDEX "IDX_recommendations_event_id" ON ai_recommendations (event_id);
CREATE INDEX "IDX_recommendations_selected" ON ai_recommendations (event_id, is_selected);
-- "is_selected = true at most once per event", enforced by the database
CREATE UNIQUE INDEX "UQ_recommendations_one_selected" ON ai_recommendations (event_id)
    WHERE is_selected;

CREATE TABLE generated_images (
    image_id              UUID PRIMARY KEY,
    event_id              UUID NOT NULL,
    image_url             VARCHAR(500) NOT NULL,
    style                 VARCHAR(50) NOT NULL,
    platform              VARCHAR(50) NOT NULL,
    is_selected           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    CONSTRAINT "FK_images_event" FOREIGN KEY (event_id)
        REFERENCES events (event_id) ON DELETE CASCADE
);
CREATE INDEX "IDX_images_event_id" ON generated_images (event_id);
CREATE INDEX "IDX_images_selected" ON generated_images (event_id, is_selected);
CREATE UNIQUE INDEX "UQ_images_one_selected" ON generated_images (event_id) WHERE is_selected;

-- No foreign key: a job's history outlives its event.
CREATE TABLE jobs (
    job_id                UUID PRIMARY KEY,
    event_id              UUID NOT NULL,
    job_type              VARCHAR(50) NOT NULL,
    status                VARCHAR(20) NOT NULL,
    progress              INT NOT NULL DEFAULT 0,
    result_key            VARCHAR(200),
    error_message         TEXT,
    completed_at          TIMESTAMP,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    version               BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT ck_jobs_status CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    CONSTRAINT ck_jobs_type CHECK (job_type IN ('AI_RECOMMENDATION', 'IMAGE_GENERATION')),
    CONSTRAINT ck_jobs_progress CHECK (progress BETWEEN 0 AND 100)
);
CREATE INDEX "IDX_jobs_event_id" ON jobs (event_id);
CREATE INDEX "IDX_jobs_type_status" ON jobs (job_type, status);
CREATE INDEX "IDX_jobs_status" ON jobs (status);

-- Outcome of every command, for GET /api/events/commands/{commandId} after Redis's TTL.
CREATE TABLE command_outcomes (
    command_id            UUID PRIMARY KEY,
    event_id              UUID NOT NULL,
    user_id               UUID NOT NULL,
    command_type          VARCHAR(50) NOT NULL,
    status                VARCHAR(10) NOT NULL,
    code                  VARCHAR(20),
    message               TEXT,
    details               JSONB NOT NULL DEFAULT '[]'::jsonb,
    event_version         BIGINT NOT NULL,
    decided_at            TIMESTAMP NOT NULL,
    CONSTRAINT ck_outcomes_status CHECK (status IN ('ACCEPTED', 'REJECTED'))
);
