"""`eventpipe`: the command line of the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from eventpipe import LOG_FORMAT
from eventpipe.settings import get_settings

app = typer.Typer(no_args_is_help=True, help=__doc__)
schemas_app = typer.Typer(no_args_is_help=True, help="Avro schemas in the registry.")
db_app = typer.Typer(no_args_is_help=True, help="The PostgreSQL projection's schema.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
projections_app = typer.Typer(no_args_is_help=True,
                              help="PostgreSQL and Redis against the events changelog.")
app.add_typer(schemas_app, name="schemas")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(projections_app, name="projections")
console = Console()
# What `eventpipe run` starts, each in its own process.
PROCESSES = ("worker", "api", "ai-worker", "content-worker", "distribution-worker")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


@contextlib.contextmanager
def _refused_on(*errors: type[Exception]) -> Iterator[None]:
    """An error the user can put right: its message and exit 2, not a traceback."""
    try:
        yield
    except errors as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(2) from None


@schemas_app.command("register")
def schemas_register() -> None:
    """Register every schema of schemas/ under <topic>-value (compatibility from settings)."""
    from streams.registry import register_all

    s = get_settings()
    for subject, schema_id in register_all(s.schema_registry_url, s.schema_compatibility).items():
        console.print(f"{subject}: id {schema_id}")


@schemas_app.command("check")
def schemas_check() -> None:
    """Say whether the local schemas are compatible with the registered ones (registers nothing)."""
    from streams.registry import check_all

    bad = 0
    for r in check_all(get_settings().schema_registry_url):
        state = "new subject" if not r.registered else ("compatible" if r.compatible
                                                        else "INCOMPATIBLE")
        bad += not r.compatible
        console.print(f"{r.subject}: {state}")
    raise typer.Exit(1 if bad else 0)


@topics_app.command("create")
def topics_create() -> None:
    """Create the pipeline's topics (idempotent)."""
    from streams.admin import TopicsUnfit, ensure_topics

    with _refused_on(TopicsUnfit):
        created = ensure_topics(get_settings())
    console.print(f"created: {', '.join(created) or 'none (all exist)'}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to PostgreSQL."""
    from sinks.migrate import migrate

    applied = migrate(get_settings().database_url)
    console.print(f"applied: {', '.join(applied) or 'none (up to date)'}")


@projections_app.command("check")
def projections_check() -> None:
    """Print every difference between the changelog and the stores; exit 1 if there is one."""
    from sinks.maintenance import NoChangelog, check

    with _refused_on(NoChangelog):
        differences = asyncio.run(check(get_settings()))
    for line in differences:
        console.print(line, markup=False)
    console.print(f"{len(differences)} differences")
    raise typer.Exit(1 if differences else 0)


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Empty both projections and write them again from the changelog."""
    from sinks.maintenance import NoChangelog, rebuild

    with _refused_on(NoChangelog):
        rebuilt = asyncio.run(rebuild(get_settings()))
    console.print(f"rebuilt {rebuilt} events")


@app.command()
def worker(loglevel: str = "info") -> None:
    """The stream worker: the command processor and its table (and the projector, unless
    disabled)."""
    from streams.worker import run_worker

    _logging(loglevel.upper())
    run_worker(get_settings(), loglevel)


@app.command()
def projector() -> None:
    """The projector alone: changelog and outcomes into PostgreSQL and Redis."""
    from streams.worker import run_projector

    _logging()
    run_projector(get_settings())


@app.command("ai-worker")
def ai_worker() -> None:
    """The AI recommendation worker: ai-job-topic -> event.recommendation.v1."""
    from workers.ai_worker import AiWorker
    from workers.runner import run_job_worker

    _logging()
    run_job_worker(AiWorker(get_settings()))


@app.command("content-worker")
def content_worker() -> None:
    """The content worker: content-job-topic -> images in the blob store -> event.image.v1."""
    from workers.content_worker import ContentWorker
    from workers.runner import run_job_worker

    _logging()
    run_job_worker(ContentWorker(get_settings()))


@app.command("distribution-worker")
def distribution_worker() -> None:
    """The distribution worker: distribution-job-topic -> channels -> event.publish.v1."""
    from workers.distribution_worker import DistributionWorker
    from workers.runner import run_job_worker

    _logging()
    run_job_worker(DistributionWorker(get_settings()))


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """The HTTP API."""
    import uvicorn

    from api.access_log import AccessLog
    from api.main import create_app

    s = get_settings()
    # The access log is ours (api/access_log.py: uvicorn's format, a fraction of the cost).
    served = create_app(s)
    if s.api_access_log:
        served = AccessLog(served)
    # uvloop and httptools (uvicorn[standard]) named, not "auto": a missing one fails at start
    # instead of silently serving at a fraction of the rate.
    uvicorn.run(served, host=host or s.api_host, port=port or s.api_port,
                log_level="info", loop="uvloop", http="httptools", access_log=False)


@app.command()
def token(user: Annotated[str, typer.Option(help="the user's UUID (the token's sub)")],
          ttl: int = 3600) -> None:
    """Print a development JWT signed with the configured HS256 secret."""
    from api.auth import issue_token

    try:
        uuid.UUID(user)
    except ValueError as exc:
        raise typer.BadParameter("--user must be a UUID") from exc
    print(issue_token(get_settings(), user, ttl))


@app.command()
def demo(api_url: Annotated[str | None, typer.Option(help="default: PUBLIC_BASE_URL")] = None,
         user: Annotated[str | None, typer.Option(help="the shop owner's UUID")] = None,
         job_seconds: float = 120.0) -> None:
    """Walk the whole flow through the API: purpose to PUBLISHED and delivered."""
    import httpx

    from api.auth import issue_token
    from eventpipe.demo import Demo, DemoFailed

    s = get_settings()
    base = api_url or s.public_base_url
    headers = {"Authorization": f"Bearer {issue_token(s, user or str(uuid.uuid4()))}"}
    console.print(f"demo against [bold]{base}[/bold]")
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        try:
            Demo(client, console, job_seconds=job_seconds).run()
        except (DemoFailed, httpx.HTTPError) as exc:
            console.print(f"[bold red]demo failed[/bold red]: {exc}", markup=True)
            raise typer.Exit(1) from exc


@app.command()
def bench(
    commands: Annotated[int | None, typer.Option(help="as BENCH_COMMANDS")] = None,
    only: Annotated[list[str] | None, typer.Option(help="throughput, latency or recovery")] = None,
) -> None:
    """Benchmarks on the running stack (its topics are reset): writes bench/RESULTS.md."""
    from bench.run import Options, main

    opts = Options(only=tuple(only or ()))
    if commands is not None:
        opts.commands = commands
    main(opts)


@app.command()
def top(
    worker_url: Annotated[str | None, typer.Option(
        envvar="TOP_WORKER_URL", help="default: http://127.0.0.1:WORKER_WEB_PORT")] = None,
    api_url: Annotated[str | None, typer.Option(
        envvar="TOP_API_URL", help="default: http://API_HOST:API_PORT")] = None,
    interval: Annotated[float, typer.Option(help="seconds between frames")] = 1.0,
    once: Annotated[bool, typer.Option(help="print one frame and exit")] = False,
) -> None:
    """A live view of the running pipeline: rates, outcomes, DLQ, lag, API, jobs, stores."""
    from eventpipe.top_view import run_top

    s = get_settings()
    run_top(s, worker_url or f"http://127.0.0.1:{s.worker_web_port}",
            api_url or f"http://{s.api_host}:{s.api_port}", interval, once)


@app.command()
def run() -> None:
    """Stream worker, API and the three collaborator workers in the foreground until Ctrl-C,
    SIGTERM or SIGHUP; if one of them dies the others are stopped (what `make run` ends with)."""
    from eventpipe.supervisor import Supervisor

    s = get_settings()
    base = f"http://{s.api_host}:{s.api_port}"
    console.print(f"[bold]API[/bold] {base}   [bold]docs[/bold] {base}/docs   "
                  f"[bold]worker[/bold] http://127.0.0.1:{s.worker_web_port}")
    console.print(f"Ctrl-C stops all of them ({', '.join(PROCESSES)}). "
                  f"\"eventpipe run: ready\" follows once {base}/health/ready is UP.")
    raise typer.Exit(Supervisor(PROCESSES, ready_url=f"{base}/health/ready").run())


@app.command()
def soak(
    minutes: Annotated[float | None, typer.Option(help="default: SOAK_MINUTES, else 10")] = None,
    rate: Annotated[float | None, typer.Option(help="commands/s; default: SOAK_RATE, else 10")]
    = None,
    seed: Annotated[int | None, typer.Option(help="default: SOAK_SEED, else 18")] = None,
) -> None:
    """Lifecycles through the API and the topics while the services crash on a seeded
    schedule, then the oracle; writes bench/SOAK.md (a checkout's tests/ is needed)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.soak import main, options_from_env

    options = options_from_env()
    options.minutes = minutes if minutes is not None else options.minutes
    options.rate = rate if rate is not None else options.rate
    options.seed = seed if seed is not None else options.seed
    _logging("WARNING")
    raise typer.Exit(main(options, typer.echo))  # plain: the report is not rich markup


if __name__ == "__main__":
    app()
