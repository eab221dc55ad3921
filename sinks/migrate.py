"""Versioned schema migrations of the PostgreSQL projection, applied with yoyo."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

__all__ = ["MIGRATIONS_DIR", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrate(database_url: str) -> list[str]:
    """Apply every pending migration (idempotent); returns the ids applied."""
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    backend = get_backend(url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]
