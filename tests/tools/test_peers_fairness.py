"""The pieces that make the peers sections fair (issue 29 point 2), with golden values: the grid widened outward
while its winner sits on an edge, early stopping in chunks keeping the best chunk, the median and spread of timed
runs, tfvrec's time to a target quality; and the peers' chunked training continuing from its factors."""
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import peers  # noqa: E402

LRS, LAMS = [0.025, 0.05, 0.1], [0.003, 0.01, 0.03]


def bowl(lr_best, lam_best):
    """A fake fit: the holdout value peaks at (lr_best, lam_best), on log scales; the payload names the point."""
    def fit(lr, lam):
        return -math.log(lr / lr_best) ** 2 - math.log(lam / lam_best) ** 2, ("model", lr, lam)
    return fit


def test_winner_inside_the_grid_is_not_widened():
    choice = peers.grid_search("fake", bowl(0.05, 0.01), LRS, LAMS, notes := [])
    assert (choice.lr, choice.lam, choice.payload) == (0.05, 0.01, ("model", 0.05, 0.01))
    assert choice.lrs == LRS and choice.lams == LAMS
    assert len(choice.tried) == 9 and len(notes) == 9
    assert choice.widenings == 0 and not choice.on_edge


def test_winner_on_an_edge_widens_outward_within_the_budget():
    calls = []

    def fit(lr, lam):
        calls.append((lr, lam))
        return bowl(0.4, 0.001)(lr, lam)
    choice = peers.grid_search("fake", fit, LRS, LAMS, [], widenings=2)
    # round 1: best (0.1, 0.003), lr high and λ low edges -> 0.2, 0.0009; round 2: best (0.2, 0.0009) -> 0.4,
    # 0.00027; round 3: best (0.4, 0.0009), lr still on the high edge, budget spent
    assert choice.lrs == [0.025, 0.05, 0.1, 0.2, 0.4]
    assert choice.lams == [0.00027, 0.0009, 0.003, 0.01, 0.03]
    assert (choice.lr, choice.lam) == (0.4, 0.0009)
    assert choice.widenings == 2 and choice.on_edge
    assert len(calls) == len(set(calls)) == 25  # every point fitted once
    assert "widened 2×" in choice.describe() and "still on an edge" in choice.describe()


def test_widening_one_side_and_a_fixed_axis():
    assert peers.widened([0.01, 0.05], [0.001, 0.01], (0.01, 0.001)) == \
        ([0.002, 0.01, 0.05], [0.0001, 0.001, 0.01], ["lr low", "λ low"])
    assert peers.widened([0.05], [0.001, 0.01], (0.05, 0.01)) == ([0.05], [0.001, 0.01, 0.1], ["λ high"])
    assert peers.widened([0.05], [0.01], (0.05, 0.01)) == ([0.05], [0.01], [])  # one value: fixed
    choice = peers.grid_search("fake", bowl(0.4, 0.001), [0.05], [0.01], [])
    assert choice.widenings == 0 and not choice.on_edge and len(choice.tried) == 1


CURVE = [0.1, 0.3, 0.25, 0.35, 0.34, 0.33, 0.2, 0.1, 0.5]  # holdout value after epoch 1, 2, ...


def fake_training():
    """``train(n)`` advances an epoch counter; the scorer is the epoch reached; evaluate reads `CURVE`."""
    trained = [0]

    def train(n):
        trained[0] += n
        return trained[0]
    return train, lambda epoch: CURVE[epoch - 1]


@pytest.mark.parametrize("chunk, stopped_at, history", [
    (1, 7, [(1, 0.1), (2, 0.3), (3, 0.25), (4, 0.35), (5, 0.34), (6, 0.33), (7, 0.2)]),
    (2, 8, [(2, 0.3), (4, 0.35), (6, 0.33), (8, 0.1)]),
])
def test_early_stopping_keeps_the_best_chunk(chunk, stopped_at, history):
    train, evaluate = fake_training()
    stopped = peers.early_stopped(train, evaluate, max_epochs=9, patience=3, chunk=chunk)
    assert (stopped.value, stopped.epoch, stopped.scorer) == (0.35, 4, 4)
    assert stopped.epochs == stopped_at and stopped.history == history


def test_early_stopping_without_patience_runs_the_budget():
    train, evaluate = fake_training()
    stopped = peers.early_stopped(train, evaluate, max_epochs=9, patience=0, chunk=4)
    assert stopped.history == [(4, 0.35), (8, 0.1), (9, 0.5)]  # the last chunk is cut at the budget
    assert (stopped.value, stopped.epoch, stopped.epochs) == (0.5, 9, 9)


def test_median_spread_and_ratio():
    assert peers.spread([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    assert peers.spread([38.0, 22.0, 48.0]) == (38.0, 22.0, 48.0)
    assert peers.format_spread([2.0, 1.0, 4.0]) == "2.0 (1.0–4.0, 3 runs)"
    assert peers.format_spread([0.123, 0.456, 0.2], digits=2) == "0.20 (0.12–0.46, 3 runs)"
    assert peers.median_ratio([89.0, 91.0, 95.0], [38.0, 40.0, 48.0]) == "2.275"  # 91 / 40
    assert peers.median_ratio([1.0], None) == "—"


def test_seconds_to_reach_a_quality():
    history = [{"epoch_seconds": 1.5, "val_hr@5": 0.2}, {"epoch_seconds": 2.0, "val_hr@5": 0.41},
               {"epoch_seconds": 2.5, "val_hr@5": 0.45}]
    assert peers.seconds_to_reach(history, 0.4) == (3.5, 2)
    assert peers.seconds_to_reach(history, 0.45) == (6.0, 3)
    assert peers.seconds_to_reach(history, 0.5) == (None, None)


def toy_interactions():
    from peers.bpr import Interactions
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 900), rng.integers(0, 40, 900)
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    return Interactions(frame, 60, 40, seed=0)


@pytest.mark.parametrize("peer, package", [("cornac BPR", "cornac"), ("implicit BPR", "implicit")])
def test_peer_chunks_continue_from_their_factors(peer, package):
    pytest.importorskip(package, reason=f"{package} is in the bench extra, not a test extra")
    from peers.bpr import PEER_MODELS
    data = toy_interactions()
    model = PEER_MODELS[peer](data, 0.05, 0.01, "one", k=8)
    model.train(2)
    first = model.scorer()
    model.train(1)
    second = model.scorer()
    assert not np.allclose(first.items, second.items)  # trained on
    model.model.learning_rate = 0.0  # a chunk without steps leaves the factors as they are: no re-initialisation
    model.train(1)
    third = model.scorer()
    np.testing.assert_allclose(second.users, third.users)
    np.testing.assert_allclose(second.items, third.items)
    again = PEER_MODELS[peer](data, 0.05, 0.01, "one", k=8)  # one thread, seeded: the same chunks, the same model
    again.train(2)
    again.train(1)
    np.testing.assert_allclose(again.scorer().items, second.items, rtol=1e-5, atol=1e-6)
