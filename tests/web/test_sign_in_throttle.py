"""Sign-in throttling: per address and account (an attacker cannot lock the owner out), back-off that
grows, limits that hold across workers sharing the database, and a cap on password hashing that answers
429 at once when every slot is taken. No wall-clock sleeps: the clock is moved (time-machine) and
threads and processes are synchronised with events and pipes."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask

from app.extensions import db
from app.models import SignInThrottle
from app.services.people.throttle import FORGET_AFTER, purge_stale
from app.sessions import hash_slots
from tests.conftest import PASSWORD, Actor, World, make_app

ATTACKER, OWNER = "198.51.100.66", "203.0.113.10"


def visitor(app: Flask, address: str) -> Actor:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Actor(address, client)


def staff(app: Flask, address: str, password: str, email: str = "a@north.test") -> Any:
    return visitor(app, address).sign_in_staff(email, password)


Worker = Callable[..., Flask]


@pytest.fixture
def worker(app: Flask, database_url: str) -> Iterator[Worker]:
    """Makes app instances on the test database (``app`` migrates and cleans it): "workers" sharing it."""
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        made.append(make_app(database_url, **config))
        return made[-1]

    yield make
    for instance in made:
        with instance.app_context():
            db.engine.dispose()


def test_a_flood_of_wrong_passwords_pauses_the_attackers_address_not_the_owner(
    app: Flask, world: World
) -> None:
    free = app.config["LOGIN_MAX_FAILURES"]
    statuses = [staff(app, ATTACKER, "guessing wrong").status_code for _ in range(free + 5)]
    assert statuses == [401] * free + [429] * 5
    paused = staff(app, ATTACKER, PASSWORD)  # even the right password waits: nothing is checked
    assert paused.status_code == 429 and 0 < int(paused.headers["Retry-After"]) <= 30
    assert "Too many failed sign-ins from your network" in paused.get_data(as_text=True)
    assert staff(app, OWNER, PASSWORD).status_code == 302  # the owner, from their own address
    # The same for a student's personal code: guesses with A's code prefix pause the guesser only.
    prefix = world.code_a.split("-")[0]
    guesses = [
        visitor(app, ATTACKER).sign_in_student(world.join_a, f"{prefix}-WRONG2").status_code
        for _ in range(free + 1)
    ]
    assert guesses == [401] * free + [429]
    assert visitor(app, OWNER).sign_in_student(world.join_a, world.code_a).status_code == 302


def test_unknown_accounts_are_throttled_exactly_like_known_ones(app: Flask, world: World) -> None:
    free = app.config["LOGIN_MAX_FAILURES"]
    known = [staff(app, "198.51.100.1", "guessing wrong") for _ in range(free + 1)]
    unknown = [staff(app, "198.51.100.2", "guessing wrong", "nobody@north.test") for _ in range(free + 1)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * free + [429]
    for answers in (known, unknown):
        assert "Sign-in failed: check what you typed." in answers[0].get_data(as_text=True)
        assert "Too many failed sign-ins from your network" in answers[-1].get_data(as_text=True)


def test_the_back_off_doubles_with_each_failure_up_to_the_longest_wait(app: Flask, world: World) -> None:
    free = app.config["LOGIN_MAX_FAILURES"]
    with time_machine.travel(datetime(2031, 3, 2, 8, 0, tzinfo=UTC), tick=False) as clock:
        assert [staff(app, ATTACKER, "guessing wrong").status_code for _ in range(free)] == [401] * free
        waits = []
        for _ in range(7):
            paused = staff(app, ATTACKER, "guessing wrong")
            assert paused.status_code == 429
            waits.append(int(paused.headers["Retry-After"]))
            clock.shift(waits[-1] - 1)
            assert staff(app, ATTACKER, "guessing wrong").status_code == 429  # a second early
            clock.shift(1)
            assert staff(app, ATTACKER, "guessing wrong").status_code == 401  # let through, and wrong
        assert waits == [30, 60, 120, 240, 480, 900, 900]  # LOGIN_BACKOFF_SECONDS doubling, LOCKOUT_MINUTES
        clock.shift(900)
        assert staff(app, ATTACKER, PASSWORD).status_code == 302  # the right password, once allowed
        assert staff(app, ATTACKER, "a typo").status_code == 401  # and the count started again
        assert staff(app, ATTACKER, PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_count_against_the_address(world: World, worker: Worker) -> None:
    """A class behind one school address signs in at the start of a lesson."""
    limited = worker(RATELIMIT_LOGIN="3 per minute")
    school = "192.0.2.30"
    assert [staff(limited, school, PASSWORD).status_code for _ in range(5)] == [302] * 5
    assert [
        visitor(limited, school).sign_in_student(world.join_a, world.code_a).status_code for _ in range(3)
    ] == [302] * 3


def test_the_limits_hold_across_workers_sharing_the_database(world: World, worker: Worker) -> None:
    first, second = (worker(RATELIMIT_LOGIN="4 per minute", LOGIN_MAX_FAILURES=3) for _ in range(2))
    # Back-off of one address on one account: three failures spread over both workers.
    statuses = [staff((first, second)[i % 2], "198.51.100.7", "guessing wrong").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert staff(first, "198.51.100.7", PASSWORD).status_code == 429
    assert staff(second, "198.51.100.7", PASSWORD).status_code == 429
    # The per-address limit, over several accounts and both workers.
    statuses = [
        staff((first, second)[i % 2], "198.51.100.8", "wrong", f"n{i}@north.test").status_code
        for i in range(6)
    ]
    assert statuses == [401] * 4 + [429] * 2


def test_the_table_holds_digests_only_and_forgets_after_a_day(app: Flask, world: World) -> None:
    with app.app_context():
        db.session.execute(sa.delete(SignInThrottle))  # the world's own sign-ins
        db.session.commit()
    staff(app, ATTACKER, "guessing wrong")
    visitor(app, ATTACKER).sign_in_student(world.join_a, "AAAAA-BBBBBB")
    with app.app_context():
        rows = db.session.scalars(sa.select(SignInThrottle)).all()
        assert len(rows) == 3  # the address, and the address with each account
        stored = " ".join(f"{r.address_key} {r.account_key}" for r in rows)
        assert ATTACKER not in stored and "north.test" not in stored and "AAAAA" not in stored
        assert all(len(r.address_key) == 64 and len(r.account_key) in (0, 64) for r in rows)
        latest = max(r.updated_at for r in rows)
        assert purge_stale(db.session(), latest) == 0
        assert purge_stale(db.session(), latest + FORGET_AFTER + timedelta(seconds=1)) == 3
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SignInThrottle)) == 0


def test_when_every_hashing_slot_is_taken_sign_in_answers_429_at_once(world: World, worker: Worker) -> None:
    first, second = worker(LOGIN_HASH_CONCURRENCY=1), worker(LOGIN_HASH_CONCURRENCY=1)
    hashing, release = threading.Event(), threading.Event()

    def hash_in_the_other_worker() -> None:  # holds the slot as a sign-in on the other worker would
        with second.app_context(), hash_slots().hold():
            hashing.set()
            release.wait(timeout=120)

    with first.app_context():
        db.session.execute(sa.delete(SignInThrottle))  # the world's own sign-ins
        db.session.commit()
    thread = threading.Thread(target=hash_in_the_other_worker)
    thread.start()
    try:
        assert hashing.wait(timeout=120)
        busy = staff(first, OWNER, PASSWORD)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        assert "Sign-in is busy right now" in busy.get_data(as_text=True)
        assert visitor(first, OWNER).sign_in_student(world.join_a, world.code_a).status_code == 429
    finally:
        release.set()
        thread.join()
    assert staff(first, OWNER, PASSWORD).status_code == 302  # free again; nothing was counted meanwhile
    with first.app_context():
        [address] = db.session.scalars(sa.select(SignInThrottle)).all()  # only the success's address row
        assert address.account_key == "" and address.failures == 0


HOLD_A_SLOT = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("holding", flush=True)
sys.stdin.read()
"""


def test_the_hashing_cap_holds_across_processes(world: World, worker: Worker) -> None:
    capped = worker(LOGIN_HASH_CONCURRENCY=2)
    with capped.app_context():
        paths = [str(p) for p in hash_slots().paths]
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD_A_SLOT, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]
    try:
        for holder in holders:
            assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        assert staff(capped, OWNER, PASSWORD).status_code == 429
        holders[0].communicate("")  # one worker process finishes hashing (or dies: the kernel frees it)
        assert staff(capped, OWNER, PASSWORD).status_code == 302
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.communicate("")
