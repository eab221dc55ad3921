-- depends: 0002_job_owner
-- The distribution worker's own record of deliveries (seed 003's Sprint 2: no external
-- call, only a log). No foreign key to events: it is the distribution service's log.
CREATE TABLE distribution_log (
    id                    BIGSERIAL PRIMARY KEY,
    event_id              UUID NOT NULL,
    channel               VARCHAR(50) NOT NULL,
    status                VARCHAR(20) NOT NULL,
    message               TEXT,
    requested_at          TIMESTAMP NOT NULL,   -- UTC; with event_id and channel, the request
    delivered_at          TIMESTAMP NOT NULL,   -- UTC
    CONSTRAINT ck_distribution_log_channel CHECK (channel IN ('URIDONGNE_TV', 'RINGO_BIZ',
        'GENIE_TV', 'INSTAGRAM', 'NAVER_BLOG', 'KAKAO_CHANNEL')),
    CONSTRAINT ck_distribution_log_status CHECK (status IN ('SUCCESS', 'FAILED'))
);
-- A replayed request (same event, requestedAt, channel) records once (ON CONFLICT DO NOTHING);
-- event_id leads, so this index also serves lookups by event.
CREATE UNIQUE INDEX "UQ_distribution_log_request"
    ON distribution_log (event_id, requested_at, channel);
