"""Request batching (``tfvrec serve --enable_batching``): TF Serving's semantics, rows back to their requests."""
import threading
import time

import grpc
import numpy as np
import pytest

from tfvrec.serving.server.batching import BatchScheduler
from tfvrec.serving.server.errors import ServingError


def run_requests(scheduler, requests, run):
    """Submit ``requests`` (key, inputs) from one thread each, all at once; returns results or errors."""
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def client(n, key, inputs):
        barrier.wait()
        try:
            results[n] = scheduler.submit(key, inputs, len(next(iter(inputs.values()))), run)
        except ServingError as e:
            results[n] = e
    threads = [threading.Thread(target=client, args=(n, *r)) for n, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_are_joined_and_get_their_own_rows():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 10, "z": inputs["x"][:, None] + np.zeros((1, 3))}
    scheduler = BatchScheduler(max_batch_size=8, batch_timeout=0.2, max_enqueued_batches=10, num_batch_threads=1)
    try:
        requests = [("k", {"x": np.array([n, n + 100])}) for n in range(4)]
        results = run_requests(scheduler, requests, run)
    finally:
        scheduler.stop()
    for n, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], [10 * n, 10 * (n + 100)])
        assert result["z"].shape == (2, 3)
    assert sorted(calls, reverse=True)[0] == 8  # all four in one batch of 8 rows
    assert scheduler.stats["batches"] < 4


def test_full_queue_answers_unavailable():
    release = threading.Event()

    def slow(inputs):
        release.wait(10)
        return {"y": inputs["x"]}
    scheduler = BatchScheduler(max_batch_size=1, batch_timeout=0.0, max_enqueued_batches=2, num_batch_threads=1)
    try:
        started = [threading.Thread(target=scheduler.submit, args=("k", {"x": np.array([n])}, 1, slow))
                   for n in range(3)]
        for thread in started:  # one runs, two wait: the queue is full
            thread.start()
            time.sleep(0.2)
        with pytest.raises(ServingError) as error:
            scheduler.submit("k", {"x": np.array([9])}, 1, slow)
        assert error.value.code == grpc.StatusCode.UNAVAILABLE and "queue is full" in error.value.message
        release.set()
        for thread in started:
            thread.join()
    finally:
        release.set()
        scheduler.stop()


def test_one_bad_request_does_not_fail_the_batch():
    def run(inputs):
        if (inputs["x"] < 0).any():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative")
        return {"y": inputs["x"] + 1}
    scheduler = BatchScheduler(max_batch_size=16, batch_timeout=0.2, max_enqueued_batches=10, num_batch_threads=1)
    try:
        results = run_requests(scheduler, [("k", {"x": np.array([1])}), ("k", {"x": np.array([-1])}),
                                           ("k", {"x": np.array([5])})], run)
    finally:
        scheduler.stop()
    assert isinstance(results[1], ServingError) and results[1].code == grpc.StatusCode.INVALID_ARGUMENT
    assert results[0]["y"].tolist() == [2] and results[2]["y"].tolist() == [6]
    assert scheduler.stats["fallbacks"] == 1


def test_different_keys_are_never_joined():
    seen = []

    def run(inputs):
        seen.append(inputs["x"].tolist())
        return {"y": inputs["x"]}
    scheduler = BatchScheduler(max_batch_size=16, batch_timeout=0.2, max_enqueued_batches=10, num_batch_threads=2)
    try:
        run_requests(scheduler, [("k=5", {"x": np.array([1])}), ("k=7", {"x": np.array([2])})], run)
    finally:
        scheduler.stop()
    assert sorted(seen) == [[1], [2]]
