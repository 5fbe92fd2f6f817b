"""The retrain lease: one holder at a time across processes, and a dead holder does not block forever."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

from fedopt_core import config
from fedopt_core.prediction import training


def _try_acquire(url: str, holder: str, barrier, results) -> None:
    config.reload_settings(database_url=url)  # a spawned process: the database it was given
    barrier.wait()
    results.put((holder, training.acquire_lease("race", holder)))


def test_exactly_one_of_many_processes_gets_the_lease(any_db: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_try_acquire, args=(any_db, f"p{i}", barrier, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = [results.get(timeout=5) for _ in workers]
    winners = [holder for holder, won in outcomes if won]
    assert len(winners) == 1
    assert training.lease_holder("race") == winners[0]


def test_the_holder_renews_and_others_wait(any_db: str) -> None:
    assert training.acquire_lease("l", "a")
    assert not training.acquire_lease("l", "b")
    assert training.acquire_lease("l", "a")  # renewal
    training.release_lease("l", "a")
    assert training.acquire_lease("l", "b")


def test_an_expired_lease_of_a_dead_holder_is_taken_over(any_db: str) -> None:
    assert training.acquire_lease("l", "dead", timedelta(seconds=-1))  # already expired
    assert training.lease_holder("l") is None
    assert training.acquire_lease("l", "alive")
    assert training.lease_holder("l") == "alive"


def test_release_by_someone_else_does_nothing(any_db: str) -> None:
    assert training.acquire_lease("l", "a")
    training.release_lease("l", "b")
    assert training.lease_holder("l") == "a"


def test_a_holder_killed_with_sigkill_is_taken_over_at_once(any_db: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    holding = (
        "import sys, time\n"
        "from fedopt_core import config\n"
        "from fedopt_core.prediction import training\n"
        f"config.reload_settings(database_url={any_db!r})\n"
        "assert training.acquire_lease(training.LEASE_NAME, training._holder_id())\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", holding], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert process.stdout.readline().strip() == "held"
        assert training.lease_holder() is not None and training.training_status()["running"]
        assert not training.acquire_lease(training.LEASE_NAME, training._holder_id())  # alive: it waits
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        started = time.monotonic()
        assert training.lease_holder() is None and not training.training_status()["running"]
        assert training.acquire_lease(training.LEASE_NAME, training._holder_id())  # not 10 minutes later
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
