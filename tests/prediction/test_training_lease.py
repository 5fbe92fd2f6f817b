"""The retrain lease: one holder at a time across processes, and a dead holder does not block forever."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

from fedopt_core.prediction import training


def _try_acquire(url: str, holder: str, barrier, results) -> None:
    barrier.wait()
    results.put((holder, training.acquire_lease("race", holder, url=url)))


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
    assert training.lease_holder("race", url=any_db) == winners[0]


def test_the_holder_renews_and_others_wait(any_db: str) -> None:
    assert training.acquire_lease("l", "a", url=any_db)
    assert not training.acquire_lease("l", "b", url=any_db)
    assert training.acquire_lease("l", "a", url=any_db)  # renewal
    training.release_lease("l", "a", url=any_db)
    assert training.acquire_lease("l", "b", url=any_db)


def test_an_expired_lease_of_a_dead_holder_is_taken_over(any_db: str) -> None:
    assert training.acquire_lease("l", "dead", timedelta(seconds=-1), url=any_db)  # already expired
    assert training.lease_holder("l", url=any_db) is None
    assert training.acquire_lease("l", "alive", url=any_db)
    assert training.lease_holder("l", url=any_db) == "alive"


def test_release_by_someone_else_does_nothing(any_db: str) -> None:
    assert training.acquire_lease("l", "a", url=any_db)
    training.release_lease("l", "b", url=any_db)
    assert training.lease_holder("l", url=any_db) == "a"
