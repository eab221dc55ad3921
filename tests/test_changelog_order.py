"""One event's commands on two topics at once: its changelog never goes back in version.

The recommendation and image agents share the `events` table. Under load the producer's
send waits on full batches and can let a later caller in first; the changelog then ended
with an older state of the event than one before it, and a restart or a partition move
restored that older state (the two-workers benchmark lost a recommendation selection that
way, and the event's publish was rejected). `projections check` reports such a record.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from bench.load import lifecycle, preload
from eventpipe.settings import Settings
from tests.conftest import Process
from tests.pipeline import Topics
from tests.test_projections import eventpipe

EVENTS = 2000
WAVE = 200  # events whose jobs run side by side


def _outcomes(conn: psycopg.Connection, event_ids: list[str]) -> int:
    return conn.execute("SELECT count(*) FROM command_outcomes WHERE event_id = ANY(%s::uuid[])",
                        (event_ids,)).fetchone()[0]


def _wait_for(conn: psycopg.Connection, event_ids: list[str], expected: int) -> None:
    deadline = time.monotonic() + 300
    while _outcomes(conn, event_ids) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _outcomes(conn, event_ids) == expected


@pytest.mark.chaos
def test_selections_made_together_all_stay_in_the_changelog(
        topics: Topics, settings: Settings, worker: Process) -> None:
    drafts, jobs = [], []
    for n in range(EVENTS):
        planned_drafts, planned_jobs, _ = lifecycle(n)
        drafts.append(planned_drafts)
        jobs.append(planned_jobs)
    event_ids = [d[0].event_id for d in drafts]
    full = [j[0].event_id for j in jobs if j]
    # All drafts first, then the jobs and selections in waves of events side by side (a
    # wave is produced when the one before it is done, so no job outlives the suite's 15 s
    # job timeout), each event's recommendation and image commands next to each other, so
    # both agents write the same event at once.
    phase_1 = [c for d in drafts for c in d]
    full_jobs = [j for j in jobs if j]
    waves = [[j[step] for step in range(len(full_jobs[0])) for j in full_jobs[start:start + WAVE]]
             for start in range(0, len(full_jobs), WAVE)]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        preload(settings.kafka_bootstrap_servers, topics.codecs, phase_1)
        expected = len(phase_1)
        _wait_for(conn, event_ids, expected)
        for wave in waves:
            preload(settings.kafka_bootstrap_servers, topics.codecs, wave)
            expected += len(wave)
            _wait_for(conn, event_ids, expected)
        rejected = conn.execute(
            "SELECT count(*) FROM command_outcomes WHERE event_id = ANY(%s::uuid[])"
            " AND status <> 'ACCEPTED'", (event_ids,)).fetchone()[0]
        selected = conn.execute(
            "SELECT count(*) FROM events WHERE event_id = ANY(%s::uuid[])"
            " AND selected_recommendation_id IS NOT NULL AND selected_image_id IS NOT NULL",
            (full,)).fetchone()[0]
    # The dates-reversed events' edit is the only rejection; every full event has both.
    assert rejected == sum(1 for n in range(EVENTS) if n % 20 == 3)
    assert selected == len(full)

    check = eventpipe("projections", "check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert check.stdout.strip().endswith("0 differences")
