"""`eventpipe`: the command line of the pipeline."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
import uuid
from typing import Annotated

import typer
from rich.console import Console

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


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    from streams.admin import ensure_topics

    created = asyncio.run(ensure_topics(get_settings()))
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
    from sinks.maintenance import check

    differences = asyncio.run(check(get_settings()))
    for line in differences:
        console.print(line, markup=False)
    console.print(f"{len(differences)} differences")
    raise typer.Exit(1 if differences else 0)


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Empty both projections and write them again from the changelog."""
    from sinks.maintenance import rebuild

    console.print(f"rebuilt {asyncio.run(rebuild(get_settings()))} events")


@app.command()
def worker(loglevel: str = "info") -> None:
    """The stream worker: Faust agents and tables (and the projector, unless disabled)."""
    from streams.worker import run_worker

    _logging(loglevel.upper())
    run_worker(get_settings(), loglevel)


@app.command()
def projector() -> None:
    """The projector alone: changelog and outcomes into PostgreSQL and Redis."""
    from streams.worker import run_projector

    _logging()
    run_projector(get_settings())


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """The HTTP API."""
    import uvicorn

    from api.main import create_app

    s = get_settings()
    uvicorn.run(create_app(s), host=host or s.api_host, port=port or s.api_port,
                log_level="info")


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
def run() -> None:
    """Worker and API in the foreground until Ctrl-C (what `make run` ends with)."""
    s = get_settings()
    procs = [
        subprocess.Popen([sys.executable, "-m", "eventpipe.cli", "worker"]),
        subprocess.Popen([sys.executable, "-m", "eventpipe.cli", "api"]),
    ]
    base = f"http://{s.api_host}:{s.api_port}"
    console.print(f"[bold]API[/bold] {base}   [bold]docs[/bold] {base}/docs   "
                  f"[bold]worker[/bold] http://127.0.0.1:{s.worker_web_port}")
    console.print("Ctrl-C stops both.")

    def stop(*_: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    failed = [p.returncode for p in procs if p.returncode not in (0, -signal.SIGTERM, None)]
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()
