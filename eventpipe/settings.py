"""All configuration in one place, read from the environment (and `.env`).

The API, the stream worker, the projector and the CLI all build from `get_settings()`;
tests override values through environment variables before the first call.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Connections (defaults match the native stack in stack/stack.sh).
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    schema_registry_url: str = "http://127.0.0.1:18081/apis/ccompat/v7"
    database_url: str = "postgresql://eventpipe:eventpipe@127.0.0.1:15432/eventpipe"
    redis_url: str = "redis://127.0.0.1:16379/0"

    # Stream worker.
    app_id: str = "eventpipe"
    topic_partitions: int = 3
    table_store: str = "memory://"  # or rocksdb:// for large state
    table_standby_replicas: int = 0
    worker_web_port: int = 6066
    worker_web_bind: str = "127.0.0.1"  # the address the worker's web page listens on
    # Where the API reaches that page (default http://127.0.0.1:WORKER_WEB_PORT); published in
    # the consumer group's member metadata, which is how the API's readiness finds it.
    worker_canonical_url: str | None = None
    # How long the group waits for a worker that died without leaving (kill -9) before its
    # partitions move: short, so a restarted worker serves again quickly.
    worker_session_timeout_seconds: float = 10.0
    data_dir: str = ".stack/worker"  # Faust table stores (RocksDB) and its own files
    job_timeout_seconds: float = 300.0  # a job unfinished this long after its request fails
    job_timeout_check_seconds: float = 10.0
    schema_compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE"] = "BACKWARD"
    # The most command records one fetch hands the processor: one batch, decided, delivered
    # and committed together (streams/processor.py). A lone command is a batch of one.
    worker_batch_commands: int = 5000
    # How long the broker holds a fetch of the worker's or the projector's consumer that
    # finds nothing new: a record can wait this long behind one (aiokafka keeps one fetch in
    # flight per broker; streams/faust_seam.BatchConsumerThread). Idle, a worker then costs
    # a few per cent of a core.
    fetch_max_wait_ms: int = 10

    # Projector (changelog -> PostgreSQL + Redis).
    # The worker's projector: in a child process, as a task in its event loop, or none (then
    # run `eventpipe projector`); streams/worker.py.
    worker_projector: Literal["process", "task", "off"] = "process"
    sink_batch_size: int = 5000  # records at most in one batch (one transaction)
    sink_batch_seconds: float = 0.05  # how long an idle poll waits for the first record
    sink_commit_seconds: float = 1.0  # written offsets are committed at most this often

    # Redis key TTLs: drafts, job status, outcomes.
    ttl_draft_seconds: int = 1800
    ttl_session_seconds: int = 3600
    ttl_job_seconds: int = 3600
    ttl_recommendation_seconds: int = 86400
    ttl_outcome_seconds: int = 3600

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    command_wait_seconds: float = Field(2.0, description="read-your-writes wait before a 202")
    api_max_body_bytes: int = 1024 * 1024  # a larger request body answers 413
    api_produce_timeout_seconds: float = 10.0  # broker away longer: 503 + Retry-After
    api_store_timeout_seconds: float = 5.0  # PostgreSQL unreachable longer: 503 + Retry-After
    # A Redis reply later than this counts as Redis down (reads then go to PostgreSQL); a
    # slower-than-usual reply within it is waited for, never a reason to fall back.
    api_redis_timeout_seconds: float = 5.0
    # Past capacity the API sheds: a request beyond these many in flight answers 429 with
    # Retry-After at once instead of queueing. Reads (GET) cost CPU all the while they are in
    # flight; commands mostly wait for the pipeline's outcome, so they get a larger budget.
    # 0 turns a limit off. /health and /metrics are never shed.
    api_max_reads_in_flight: int = 64
    api_max_commands_in_flight: int = 512
    # The event list (GET /api/events) holds one of the 8 PostgreSQL connections for its two
    # queries: past twice the pool, a list would only queue for one (bench/ANALYSIS.md).
    api_max_lists_in_flight: int = 16
    # ... and while the event loop runs this late (requests it has not reached yet wait at
    # least as long): the queue stays a fraction of a second however much is asked. 0: off.
    api_shed_loop_lag_seconds: float = 0.1
    api_access_log: bool = True  # an access log line per request (api/access_log.py)
    # /health/ready asks the broker about the worker's and the projector's consumer groups
    # (and the worker's own page) at most this often; answers in between reuse the last.
    api_pipeline_check_seconds: float = 1.0
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: str = "dev-secret-change-me-0123456789abcdef"  # HS256 signing/verifying key
    jwt_public_key: str = ""  # PEM, for RS256
    jwt_token_ttl_seconds: int = 3600
    # Public base of this API, for the links it hands out (signed image URLs).
    public_base_url: str = "http://127.0.0.1:8000"

    # Collaborator workers (AI recommendations, images, distribution).
    # Each reports progress in steps this far apart, so a client polling sees them.
    worker_step_seconds: float = 0.2

    # AI worker: explicit rules, or an OpenAI-compatible endpoint with the rules as fallback.
    ai_provider: Literal["rules", "openai"] = "rules"
    openai_base_url: str = ""  # e.g. http://127.0.0.1:11434/v1
    openai_api_key: str = "unused"
    openai_model: str = "gpt-4o-mini"
    ai_timeout_seconds: float = 30.0
    ai_retries: int = 2

    # Content worker: where images go, and how long their signed URLs live (7 days).
    blob_store: Literal["local", "azure"] = "local"
    blob_dir: str = ".stack/blobs"  # the local store; the API serves it through signed URLs
    blob_signing_key: str = "blob-signing-key-change-me-0123456789"
    blob_url_ttl_seconds: int = 7 * 24 * 3600
    blob_upload_attempts: int = 3
    azure_storage_connection_string: str = ""  # Azure Blob Storage (or Azurite)
    azure_container: str = "event-images"
    image_font_path: str = "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"

    # Distribution worker: record deliveries in a log table (seed's Sprint 2), or call a
    # Distribution Service over HTTP with a timeout, retries and a circuit breaker per channel.
    distribution_adapter: Literal["log", "http"] = "log"
    distribution_service_url: str = ""
    distribution_timeout_seconds: float = 70.0
    distribution_attempts: int = 3
    breaker_failure_threshold: int = 3
    breaker_recovery_seconds: float = 60.0

    @property
    def worker_url(self) -> str:
        """Where the stream worker's web page (/ready, /metrics) is reached."""
        return self.worker_canonical_url or f"http://127.0.0.1:{self.worker_web_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
