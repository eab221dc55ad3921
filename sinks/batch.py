"""One batch of the projection: the newest state per event and every outcome.

Kept apart from the projector's Kafka loop so any driver of the sinks folds the same way
(the projector, and the Quix Streams peer in `bench/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROJECTED_STATUSES", "Batch"]

# Events in these statuses have rows; any other status (DISCARDED) removes them.
PROJECTED_STATUSES = frozenset({"DRAFT", "PUBLISHED", "ENDED"})


@dataclass
class Batch:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # eventId -> newest
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[Any, int] = field(default_factory=dict)  # partition -> next offset to read
    # commandIds of the states' commands whose outcome is not in the batch yet
    awaited: set[str] = field(default_factory=set)

    def add_state(self, state: dict[str, Any]) -> None:
        seen = self.states.get(state["eventId"])
        if seen is None or seen["version"] < state["version"]:
            self.states[state["eventId"]] = state
        if recent := state.get("recentCommands"):
            self.awaited.add(recent[-1])  # the command that made this state

    def add_outcome(self, outcome: dict[str, Any]) -> None:
        self.outcomes.append(outcome)
        self.awaited.discard(outcome["commandId"])

    @property
    def upserts(self) -> list[dict[str, Any]]:
        return [s for s in self.states.values() if s["status"] in PROJECTED_STATUSES]

    @property
    def deletes(self) -> list[dict[str, Any]]:
        return [s for s in self.states.values() if s["status"] not in PROJECTED_STATUSES]
