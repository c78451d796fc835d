"""The pure transition table."""

from __future__ import annotations

import itertools

import pytest

from tajiri_live.streams.lifecycle import (
    FINAL_STATUSES,
    TRANSITIONS,
    StreamStatus,
    can_transition,
    path_to,
)

S = StreamStatus


def test_the_happy_path_is_allowed() -> None:
    path = [S.SCHEDULED, S.PRE_LIVE, S.LIVE, S.ENDING, S.ENDED]
    for current, target in itertools.pairwise(path):
        assert can_transition(current, target)


@pytest.mark.parametrize("status", [s for s in S if s not in FINAL_STATUSES])
def test_any_non_final_status_can_be_cancelled(status: StreamStatus) -> None:
    assert can_transition(status, S.CANCELLED)


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_final_statuses_go_nowhere(status: StreamStatus) -> None:
    assert TRANSITIONS[status] == frozenset()


def test_an_encoder_may_reconnect_while_ending() -> None:
    assert can_transition(S.ENDING, S.LIVE)


def test_no_skipping_or_going_back() -> None:
    assert not can_transition(S.SCHEDULED, S.LIVE)
    assert not can_transition(S.LIVE, S.ENDED)
    assert not can_transition(S.LIVE, S.SCHEDULED)
    assert not can_transition(S.PRE_LIVE, S.SCHEDULED)


def test_start_on_scheduled_walks_through_pre_live() -> None:
    assert path_to(S.SCHEDULED, S.LIVE) == [S.PRE_LIVE, S.LIVE]
    assert path_to(S.PRE_LIVE, S.LIVE) == [S.LIVE]
    assert path_to(S.ENDED, S.LIVE) is None
