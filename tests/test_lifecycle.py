"""The state machine's rules as plain functions (no services needed)."""

from __future__ import annotations

import uuid

import pytest

from streams.envelope import has_nul
from streams.lifecycle import Command, Inapplicable, apply
from streams.vocabulary import ErrorCode, EventStatus

USER = str(uuid.uuid4())
EVENT = str(uuid.uuid4())


def cmd(type_: str, payload: dict | None = None, user: str = USER,
        command_id: str | None = None) -> Command:
    return Command(type_, command_id or str(uuid.uuid4()), EVENT, user, 1_700_000_000_000,
                   payload or {})


def purpose(**overrides: object) -> Command:
    return cmd("PurposeSelected", {"objective": "REVISIT", "storeName": "맛있는집",
                                   "industry": "음식점", "address": "서울", "storeId": None,
                                   **overrides})


def test_purpose_creates_a_draft_and_announces_it() -> None:
    d = apply(None, purpose())
    assert d.accepted and d.changed
    assert d.state["status"] == EventStatus.DRAFT
    assert d.state["version"] == 1
    assert [f.type for f in d.facts] == ["EventDraftCreated"]
    assert d.facts[0].payload["eventDraftId"] == EVENT


def test_store_id_is_derived_stably_when_absent() -> None:
    assert apply(None, purpose()).state["storeId"] == apply(None, purpose()).state["storeId"]


def test_missing_store_info_is_event_002_and_creates_nothing() -> None:
    d = apply(None, purpose(storeName=" ", address=""))
    assert not d.accepted and d.state is None
    assert d.code == ErrorCode.EVENT_002
    assert set(d.details) == {"storeName", "address"}


def test_same_command_twice_has_no_second_effect() -> None:
    first = purpose()
    state = apply(None, first).state
    again = apply(state, first)
    assert again.duplicate and again.accepted and not again.changed
    assert again.state is state and again.facts == ()


def test_update_only_in_draft_and_dates_in_order() -> None:
    state = apply(None, purpose()).state
    ok = apply(state, cmd("DraftUpdated", {"eventName": "봄맞이", "startDate": "2026-03-01",
                                           "endDate": "2026-03-31", "channels": None}))
    assert ok.accepted and ok.state["eventName"] == "봄맞이" and ok.state["version"] == 2
    assert state["eventName"] is None  # the old state was not mutated
    bad = apply(ok.state, cmd("DraftUpdated", {"startDate": "2026-04-01"}))
    assert bad.code == ErrorCode.EVENT_006 and bad.state is ok.state
    published = {**ok.state, "status": EventStatus.PUBLISHED.value}
    assert apply(published, cmd("DraftUpdated", {"eventName": "x"})).code == ErrorCode.EVENT_003


def test_other_users_and_unknown_events_look_the_same() -> None:
    state = apply(None, purpose()).state
    theirs = apply(state, cmd("DraftUpdated", {"eventName": "x"}, user=str(uuid.uuid4())))
    missing = apply(None, cmd("DraftUpdated", {"eventName": "x"}))
    assert theirs.code == missing.code == ErrorCode.EVENT_005
    assert theirs.state is None and theirs.details == missing.details


def test_discard_then_nothing_more() -> None:
    state = apply(None, purpose()).state
    gone = apply(state, cmd("DraftDiscarded", {"reason": None}))
    assert gone.accepted and gone.state["status"] == EventStatus.DISCARDED
    assert apply(gone.state, cmd("DraftUpdated", {"eventName": "x"})).code == ErrorCode.EVENT_005


def test_text_longer_than_its_column_is_inapplicable_not_a_stalled_projection() -> None:
    with pytest.raises(Inapplicable, match="storeName has 201 characters") as exc:
        apply(None, purpose(storeName="가" * 201))
    assert exc.value.code == "INVALID_TEXT"
    draft = apply(None, purpose()).state
    too_long = [{"title": "t", "promotionType": "x" * 51}]
    with pytest.raises(Inapplicable, match="promotionType"):
        apply(draft, cmd("RecommendationsGenerated", {"jobId": "j", "recommendations": too_long}))
    assert apply(None, purpose(storeName="가" * 200)).accepted


@pytest.mark.parametrize("payload, found", [
    ({"address": "부산\x00시"}, True),
    ({"recommendations": [{"title": "t"}, {"description": "a\x00"}]}, True),
    ({"trendAnalysis": {"industryTrends": ["x", "\x00"]}}, True),
    ({"address": "부산시", "channels": ["INSTAGRAM"], "storeId": None, "progress": 0}, False),
    ({"recommendations": [{"title": "\\u0000 as text"}]}, False),
])
def test_a_nul_anywhere_in_a_payload_is_found(payload: dict[str, object], found: bool) -> None:
    # The processor dead-letters such a command (INVALID_TEXT): PostgreSQL text holds no NUL.
    assert has_nul(payload) is found
