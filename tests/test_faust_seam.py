"""Every Faust internal that `streams/faust_seam.py` and `streams/table.py` rely on, checked
against the installed faust-streaming itself (no stand-in with the same names): an upgrade
that renames or reshapes one fails here, not in production."""

from __future__ import annotations

import inspect
from pathlib import Path

import faust
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.faust_seam import BatchConsumer, BatchTransport, PipelineApp
from streams.table import ChangelogRecord, ChangelogWrite, EventsTable


def test_the_fetch_loop_reads_records_through_wait_next_records() -> None:
    # Faust's getmany takes aiokafka's fetched {tp: [records]} from `_wait_next_records`
    # and only then makes messages of them: the seam's override sees every record first.
    wait = faust_consumer.Consumer._wait_next_records
    assert inspect.iscoroutinefunction(wait)
    assert list(inspect.signature(wait).parameters) == ["self", "timeout"]
    assert "self._wait_next_records(timeout)" in inspect.getsource(
        faust_consumer.Consumer.getmany)
    assert BatchConsumer._wait_next_records is not wait


def test_the_commit_call_and_the_committed_offsets_are_the_drivers() -> None:
    # `_commit` is where Faust's own commit ends: the driver's commit through its thread.
    commit = faust_aiokafka.Consumer._commit
    assert inspect.iscoroutinefunction(commit)
    assert list(inspect.signature(commit).parameters) == ["self", "offsets"]
    assert "self._commit(committable_offsets)" in inspect.getsource(
        faust_consumer.Consumer._commit_offsets)
    assert "self._committed_offset.update(committable_offsets)" in inspect.getsource(
        faust_consumer.Consumer._commit_offsets)


def test_the_app_builds_its_consumer_from_the_seams_transport(tmp_path: Path) -> None:
    assert "self._new_transport()" in inspect.getsource(faust.App.transport.fget)  # type: ignore[attr-defined]
    app = PipelineApp("seam-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert isinstance(app.transport, BatchTransport)
    consumer = app.consumer  # built by Faust itself, as the worker builds it
    assert isinstance(consumer, BatchConsumer)
    assert consumer._committed_offset.get(TP("t", 0)) is None  # a defaultdict, read by seeks


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_delivered_changelog_record_is_stored_as_recovery_stores_it(
        tmp_path: Path, store: str) -> None:
    app = faust.App("seam-test", broker="kafka://127.0.0.1:1", store=store,
                    datadir=str(tmp_path))
    table = app.tables.add(EventsTable(app, name="events", key_type=str, partitions=3,
                                       beacon=app.tables.beacon))
    state = {"eventId": "e1", "version": 2, "status": "DRAFT"}
    key, value = table.encode("e1", state)
    changelog = table.changelog_topic.get_topic_name()
    table.write_delivered([ChangelogWrite("e1", state,
                                          ChangelogRecord(changelog, 2, 41, key, value))])
    table._states.clear()  # read from the store itself, not the cache
    assert table.read("e1") == state
    assert table.read("e2") is None
    if store == "rocksdb://":
        # A restart reads the changelog from after the record the store holds.
        assert table.data.persisted_offset(TP(changelog, 2)) == 41


def test_the_flags_not_consuming_reads_are_the_ones_faust_sets(tmp_path: Path) -> None:
    from faust.tables import recovery

    from streams.faust_seam import not_consuming

    assert "self.rebalancing = True" in inspect.getsource(faust.App.on_rebalance_start)
    assert "self.rebalancing = False" in inspect.getsource(faust.App.on_rebalance_end)
    recovery_source = inspect.getsource(recovery.Recovery)
    assert "self.app.in_recovery = True" in recovery_source
    assert "self.app.in_recovery = False" in recovery_source
    assert "consumer.resume_flow()" in inspect.getsource(recovery.Recovery._resume_streams)
    app = PipelineApp("seam-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert not_consuming(app) is None or isinstance(not_consuming(app), str)
    app.consumer.stop_flow()
    assert not_consuming(app) == "consumer flow paused"
    app.in_recovery = True
    assert not_consuming(app) == "recovering the table"
    app.rebalancing = True
    assert not_consuming(app) == "rebalancing"
