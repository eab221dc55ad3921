"""The job timer's index (pure logic; the timeout end to end is in test_recovery and
test_collaborators_e2e, on the real stack)."""

from __future__ import annotations

from typing import Any

from streams.timeouts import OpenJobs


def state(status: str = "DRAFT", **jobs: tuple[str, int]) -> dict[str, Any]:
    return {"status": status, "jobs": {
        job_id: {"jobId": job_id, "status": job_status, "createdAt": created}
        for job_id, (job_status, created) in jobs.items()}}


def test_an_event_is_indexed_by_its_oldest_unfinished_job() -> None:
    index = OpenJobs()
    index.track("e1", state(a=("COMPLETED", 100), b=("PROCESSING", 300), c=("PENDING", 200)))
    assert index.requested_before(199) == []
    assert index.requested_before(200) == ["e1"]


def test_finished_discarded_and_gone_events_leave_the_index() -> None:
    index = OpenJobs()
    for event_id in ("done", "discarded", "gone"):
        index.track(event_id, state(a=("PENDING", 100)))
    index.track("done", state(a=("FAILED", 100)))
    index.track("discarded", state("DISCARDED", a=("PENDING", 100)))
    index.track("gone", None)
    assert len(index) == 0


def test_rebuild_replaces_the_index_with_the_table() -> None:
    index = OpenJobs()
    assert index.stale
    index.track("old", state(a=("PENDING", 100)))
    index.rebuild([("e1", state(a=("PENDING", 50))), ("e2", state()), ("e3", state("ENDED"))])
    assert not index.stale
    assert index.requested_before(10**12) == ["e1"]
