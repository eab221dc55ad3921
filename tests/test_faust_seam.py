"""Every Faust internal that `streams/faust_seam.py` and `streams/table.py` rely on, checked
against the installed faust-streaming itself (no stand-in with the same names): an upgrade
that renames or reshapes one fails here, not in production."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.tables import recovery as faust_recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.faust_seam import (
    BatchConsumer,
    BatchConsumerThread,
    BatchTransport,
    PipelineApp,
    not_consuming,
    restore_in_bulk,
)
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


def test_recoverys_loop_keeps_what_the_bulk_restore_advances() -> None:
    # Faust's loop applies a changelog event when its offset is past `offsets[tp]` (the
    # active offsets for an active partition), and the recovery is over when every active
    # partition's offset reaches its highwater: the bulk restore advances the same counter.
    slurp = inspect.getsource(faust_recovery.Recovery._slurp_changelogs.fun)  # a Service task
    assert "offsets = active_offsets" in slurp and "offsets[tp] = offset" in slurp
    assert "changelog_queue.get()" in slurp and "table.apply_changelog_batch(buf)" in slurp
    assert "self.active_offsets" in inspect.getsource(faust_recovery.Recovery.active_remaining)
    assert "table.apply_changelog_batch(buffer)" in inspect.getsource(
        faust_recovery.Recovery.flush_buffers)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_run_of_fetched_changelog_records_is_stored_in_bulk(tmp_path: Path,
                                                              store: str) -> None:
    app = PipelineApp("seam-test", broker="kafka://127.0.0.1:1", store=store,
                      datadir=str(tmp_path))
    table = app.tables.add(EventsTable(app, name="events", key_type=str, partitions=3,
                                       beacon=app.tables.beacon))
    changelog = table.changelog_topic.get_topic_name()
    tp = TP(changelog, 1)
    recovery = app.tables.recovery
    recovery.add_active(table, tp)  # as Faust does for each assigned changelog partition
    states = [{"eventId": f"e{n}", "version": n} for n in range(4)]
    fetched = [ConsumerRecord(changelog, 1, 10 + n, 0, 0, *table.encode(s["eventId"], s),
                              None, 0, 0, ()) for n, s in enumerate(states)]
    records = {tp: fetched}

    assert restore_in_bulk(app, records, None) == 3
    assert records[tp] == fetched[-1:]  # the last goes on through Faust's loop
    assert recovery.active_offsets[tp] == 12
    assert [table.read(s["eventId"]) for s in states] == [*states[:3], None]
    if store == "rocksdb://":
        assert table.data.persisted_offset(tp) == 12
    # A run Faust's loop has already applied is not stored again.
    again = {tp: fetched[:3]}
    assert restore_in_bulk(app, again, None) == 0 and again[tp] == fetched[2:3]


def test_the_flags_not_consuming_reads_are_the_ones_faust_sets(tmp_path: Path) -> None:
    assert "self.rebalancing = True" in inspect.getsource(faust.App.on_rebalance_start)
    assert "self.rebalancing = False" in inspect.getsource(faust.App.on_rebalance_end)
    recovery_source = inspect.getsource(faust_recovery.Recovery)
    assert "self.app.in_recovery = True" in recovery_source
    assert "self.app.in_recovery = False" in recovery_source
    assert "consumer.resume_flow()" in inspect.getsource(faust_recovery.Recovery._resume_streams)
    app = PipelineApp("seam-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert not_consuming(app) is None  # a new app: no rebalance, no recovery, flow on
    app.consumer.stop_flow()
    assert not_consuming(app) == "consumer flow paused"
    app.in_recovery = True
    assert not_consuming(app) == "recovering the table"
    app.rebalancing = True
    assert not_consuming(app) == "rebalancing"


def test_the_worker_consumers_fetch_wait_is_the_apps(tmp_path: Path) -> None:
    # Faust builds its consumer thread in `_new_consumer_thread` and the aiokafka consumer in
    # `_create_worker_consumer`, fixing `fetch_max_wait_ms=1500`, which aiokafka keeps in
    # `_fetch_max_wait_ms` until its fetcher is made at start.
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    app = PipelineApp("seam-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    app.fetch_max_wait_ms = 7
    thread = app.consumer._new_consumer_thread()
    assert isinstance(thread, BatchConsumerThread)

    async def build() -> Any:  # aiokafka makes its consumer inside a running loop
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert consumer._fetch_max_wait_ms == 7
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        type(consumer).start)


def test_a_fetch_across_a_rebalance_is_known_and_sought_back_through_faust() -> None:
    # Faust's fetch step first waits out a paused flow (a rebalance), the seam's does the same
    # before it reads the generation; the generation is set when partitions are assigned;
    # and `Consumer.seek` is Faust's public seek, through its consumer thread to aiokafka's.
    wait = inspect.getsource(faust_consumer.Consumer._wait_next_records)
    assert wait.index("if not self.flow_active:") < wait.index("self.wait(self.can_resume_flow)")
    assert "app.consumer_generation_id = generation" in inspect.getsource(
        faust_aiokafka.ConsumerRebalanceListener.on_partitions_assigned)
    seek = faust_consumer.Consumer.seek
    assert inspect.iscoroutinefunction(seek)
    assert list(inspect.signature(seek).parameters) == ["self", "partition", "offset"]
    assert "self._thread.seek(partition, offset)" in inspect.getsource(
        faust_consumer.ThreadDelegateConsumer._seek)
    assert "consumer().seek(partition, offset)" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread.seek)
