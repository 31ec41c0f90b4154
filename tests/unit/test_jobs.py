"""The rules of background jobs, without a database: digests of equal requests, lapsed leases, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.jobs import JobState, after_lapsed_lease, is_stale, params_digest, progress_share


def test_equal_requests_have_equal_digests_whatever_the_order_of_their_keys() -> None:
    one, other = {"a": 1, "b": [2, 3]}, {"b": [2, 3], "a": 1}
    assert params_digest("bias_check", one) == params_digest("bias_check", other)
    assert params_digest("bias_check", {"a": 1}) != params_digest("fit_params", {"a": 1})
    assert params_digest("bias_check", {"a": 1}) != params_digest("bias_check", {"a": 2})


def test_a_lapsed_lease_requeues_then_fails_and_never_reruns_committed_work() -> None:
    assert after_lapsed_lease(1, 3, False).state is JobState.QUEUED
    failed = after_lapsed_lease(3, 3, False)
    assert failed.state is JobState.FAILED and failed.error and "3 time(s)" in failed.error
    assert after_lapsed_lease(1, 3, True).state is JobState.CANCELLED
    assert after_lapsed_lease(3, 3, True, committed=True).state is JobState.SUCCEEDED


def test_staleness_and_progress() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = timedelta(seconds=60)
    assert not is_stale(now - timedelta(seconds=59), now, lease)
    assert is_stale(now - timedelta(seconds=61), now, lease) and is_stale(None, now, lease)
    assert progress_share(3, None) is None and progress_share(3, 0) is None
    assert progress_share(3, 4) == 0.75 and progress_share(5, 4) == 1.0
