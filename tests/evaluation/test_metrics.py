"""Ranking metrics: hand-worked golden values, tie handling, and agreement with ranx / scikit-learn.

ranx is imported only here (its numba import costs seconds).
"""
import math

import numpy as np
import pytest

from tfvrec.evaluation import metrics as M

L2 = math.log2
# The worked example of the brief: descending order is items 0 (.9), 2 (.5), 3 (.3), 1 (.1),
# so the relevant items 2 and 1 sit at 0-based ranks 1 and 3.
SCORES = np.array([[0.9, 0.1, 0.5, 0.3]])
RELEVANT = np.array([[False, True, True, False]])


@pytest.mark.parametrize("k, precision, recall, hit, ndcg", [
    (1, 0.0, 0.0, 0.0, 0.0),
    (2, 1 / 2, 1 / 2, 1.0, (1 / L2(3)) / (1 + 1 / L2(3))),
    (3, 1 / 3, 1 / 2, 1.0, (1 / L2(3)) / (1 + 1 / L2(3))),
    (4, 2 / 4, 2 / 2, 1.0, (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3))),
    # k beyond the list: precision still divides by k (as ranx / trec_eval do).
    (10, 2 / 10, 1.0, 1.0, (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3))),
])
def test_golden_single_user(k, precision, recall, hit, ndcg):
    assert M.precision_at_k(SCORES, RELEVANT, k) == pytest.approx([precision])
    assert M.recall_at_k(SCORES, RELEVANT, k) == pytest.approx([recall])
    assert M.hit_rate_at_k(SCORES, RELEVANT, k) == pytest.approx([hit])
    assert M.ndcg_at_k(SCORES, RELEVANT, k) == pytest.approx([ndcg])
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    assert M.f1_at_k(SCORES, RELEVANT, k) == pytest.approx([f1])


def test_golden_auc():
    # Pairs (relevant, irrelevant): (.1,.9) wrong, (.1,.3) wrong, (.5,.9) wrong, (.5,.3) right.
    # (The brief quoted 0.5 for this example; counting the four pairs gives 1/4.)
    assert M.auc(SCORES, RELEVANT) == pytest.approx([0.25])
    # One tied pair out of two: (.5 vs .5) = 0.5, (.5 vs .2) = 1.
    assert M.auc([[0.5, 0.5, 0.2]], [[True, False, False]]) == pytest.approx([0.75])


def test_golden_batch_with_padding():
    scores = np.array([
        [0.2, 0.8, 0.6, 0.4, 9.0],   # last column is padding, must not push the others down
        [5.0, 4.0, 3.0, 2.0, 1.0],   # relevant ranks 1 and 4 of 5
        [1.0, 3.0, 2.0, 0.0, 0.0],   # one relevant at the top; two padding cells
    ])
    relevant = np.array([
        [False, True, False, False, False],
        [False, True, False, False, True],
        [False, True, False, False, False],
    ])
    valid = np.array([
        [True, True, True, True, False],
        [True, True, True, True, True],
        [True, True, True, False, False],
    ])
    k = 2
    assert M.hit_rate_at_k(scores, relevant, k, valid) == pytest.approx([1, 1, 1])
    assert M.precision_at_k(scores, relevant, k, valid) == pytest.approx([1 / 2, 1 / 2, 1 / 2])
    assert M.recall_at_k(scores, relevant, k, valid) == pytest.approx([1, 1 / 2, 1])
    assert M.ndcg_at_k(scores, relevant, k, valid) == pytest.approx([1, (1 / L2(3)) / (1 + 1 / L2(3)), 1])
    # Row 2: relevant item 1 beats 0 and 3 and 2 (of the 3 irrelevant, 3 are below) ...
    # row 1: item 1 (4.0) beats 2 of the 3 irrelevant items, item 4 (1.0) none -> 2/6.
    assert M.auc(scores, relevant, valid) == pytest.approx([1.0, 2 / 6, 1.0])


def test_ndcg_ideal_uses_min_of_k_and_relevant():
    # Three relevant items at ranks 0, 1, 2 and k = 2: ideal DCG covers 2 positions, so 1.0.
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    relevant = np.array([[True, True, True, False]])
    assert M.ndcg_at_k(scores, relevant, 2) == pytest.approx([1.0])
    # Only the first relevant at rank 1 of k = 3 with 1 relevant: 1/log2(3).
    assert M.ndcg_at_k([[2.0, 1.0, 0.0]], [[False, True, False]], 3) == pytest.approx([1 / L2(3)])


def test_user_without_relevant_is_nan():
    scores = np.array([[0.3, 0.2], [0.1, 0.9]])
    relevant = np.array([[False, False], [True, False]])
    for fn in (M.precision_at_k, M.recall_at_k, M.f1_at_k, M.hit_rate_at_k, M.ndcg_at_k):
        values = fn(scores, relevant, 1)
        assert np.isnan(values[0]) and not np.isnan(values[1])
    assert np.isnan(M.auc(scores, relevant)[0])
    assert np.isnan(M.auc([[1.0]], [[True]])[0])  # no irrelevant candidate


def test_ties_do_not_favour_the_relevant_item():
    users, candidates, k = 3000, 101, 5
    scores = np.zeros((users, candidates))
    relevant = np.zeros((users, candidates), dtype=bool)
    relevant[:, 0] = True  # relevant first in column order: a stable sort would rank it first
    hr = M.hit_rate_at_k(scores, relevant, k, seed=3).mean()
    sd = math.sqrt(k / candidates * (1 - k / candidates) / users)
    assert abs(hr - k / candidates) < 4 * sd
    assert M.auc(scores, relevant) == pytest.approx(np.full(users, 0.5))
    # Deterministic for one seed, different for another, and consistent across metrics.
    assert np.array_equal(M.hit_rate_at_k(scores, relevant, k, seed=3), M.hit_rate_at_k(scores, relevant, k, seed=3))
    assert not np.array_equal(M.hit_rate_at_k(scores, relevant, k, seed=3),
                              M.hit_rate_at_k(scores, relevant, k, seed=4))
    assert np.array_equal(M.hit_rate_at_k(scores, relevant, k, seed=3) * (1 / k),
                          M.precision_at_k(scores, relevant, k, seed=3))


def test_ties_between_relevant_items_give_distinct_ranks():
    # Two tied relevant items and nothing else: they take ranks 0 and 1 in some order.
    scores = np.array([[1.0, 1.0, 0.0]])
    relevant = np.array([[True, True, False]])
    assert M.precision_at_k(scores, relevant, 2) == pytest.approx([1.0])
    assert M.ndcg_at_k(scores, relevant, 2) == pytest.approx([1.0])
    assert M.recall_at_k(scores, relevant, 1) == pytest.approx([0.5])


def test_all_metrics_matches_single_functions():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 20)).astype(float)  # many ties
    relevant = rng.random((50, 20)) < 0.2
    relevant[:, 0] = True
    valid = rng.random((50, 20)) < 0.9
    valid |= relevant
    out = M.all_metrics(scores, relevant, [1, 5, 10], valid, seed=7)
    assert list(out) == M.metric_names([1, 5, 10])
    for k in (1, 5, 10):
        np.testing.assert_allclose(out[f"hr@{k}"], M.hit_rate_at_k(scores, relevant, k, valid, seed=7))
        np.testing.assert_allclose(out[f"ndcg@{k}"], M.ndcg_at_k(scores, relevant, k, valid, seed=7))
        np.testing.assert_allclose(out[f"precision@{k}"], M.precision_at_k(scores, relevant, k, valid, seed=7))
        np.testing.assert_allclose(out[f"recall@{k}"], M.recall_at_k(scores, relevant, k, valid, seed=7))
        np.testing.assert_allclose(out[f"f1@{k}"], M.f1_at_k(scores, relevant, k, valid, seed=7))
    np.testing.assert_allclose(out["auc"], M.auc(scores, relevant, valid))


@pytest.mark.parametrize("call, message", [
    (lambda: M.ndcg_at_k([0.1, 0.2], [True, False], 1), "2-D"),
    (lambda: M.ndcg_at_k([[0.1, 0.2]], [[True]], 1), "shape"),
    (lambda: M.ndcg_at_k([[0.1, 0.2]], [[1, 0]], 1), "boolean"),
    (lambda: M.ndcg_at_k([[0.1, 0.2]], [[True, False]], 0), "positive integer"),
    (lambda: M.ndcg_at_k([[0.1, 0.2]], [[True, False]], 2.0), "positive integer"),
    (lambda: M.ndcg_at_k([[np.nan, 0.2]], [[True, False]], 1), "NaN"),
    (lambda: M.ndcg_at_k([[0.1, 0.2]], [[True, False]], 1, valid=[[False, True]]), "masked out"),
    (lambda: M.metric_names([5, 5]), "duplicates"),
])
def test_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_nan_in_padding_is_allowed():
    scores = np.array([[0.1, 0.9, np.nan]])
    assert M.hit_rate_at_k(scores, np.array([[True, False, False]]), 1,
                           valid=np.array([[True, True, False]])) == pytest.approx([0.0])


def test_pair_keys_are_a_pure_function_of_seed_user_item():
    users = np.array([[0], [1], [2]])
    items = np.arange(5)[None, :]
    keys = M.pair_keys(9, users, items)
    assert keys.dtype == np.uint64 and keys.shape == (3, 5)
    assert np.array_equal(keys[1:2, 2:4], M.pair_keys(9, [[1]], [[2, 3]]))
    assert not np.array_equal(keys, M.pair_keys(10, users, items))
    unit = M.keys_to_unit_interval(M.pair_keys(0, np.arange(20000), 7))
    assert 0 <= unit.min() and unit.max() < 1 and abs(unit.mean() - 0.5) < 0.01


# -- independent implementations ---------------------------------------------------------------

def _random_lists(seed, users=200, ties=False):
    rng = np.random.default_rng(seed)
    width = 60
    scores = rng.integers(0, 6, size=(users, width)).astype(float) if ties else rng.random((users, width))
    lengths = rng.integers(8, width + 1, size=users)
    valid = np.arange(width)[None, :] < lengths[:, None]
    relevant = np.zeros((users, width), dtype=bool)
    for u in range(users):
        relevant[u, rng.choice(lengths[u], size=rng.integers(1, 6), replace=False)] = True
    # Padding cells get the highest scores, so a masking bug would show.
    scores[~valid] = 100.0
    return scores, relevant, valid


def test_agrees_with_ranx_on_random_ranked_lists():
    ranx = pytest.importorskip("ranx")
    scores, relevant, valid = _random_lists(seed=1)
    # Query ids sort in user order, so ranx's per-query arrays line up with our rows.
    qrels, run = {}, {}
    for u in range(len(scores)):
        q = f"q{u:04d}"
        qrels[q] = {f"d{c}": 1 for c in np.flatnonzero(relevant[u])}
        run[q] = {f"d{c}": float(scores[u, c]) for c in np.flatnonzero(valid[u])}
    # ranx's "ndcg" is the Järvelin variant (rel / log2(rank + 1), 1-based), ours too; with
    # binary relevance the Burges variant ("ndcg_burges") is identical, so check both.
    # Plain dicts rather than ranx.Qrels / ranx.Run: same metrics code, but it skips the
    # numba typed-dict construction that costs several seconds.
    names = ["hit_rate@1", "hit_rate@5", "ndcg@5", "ndcg_burges@5", "ndcg@10", "precision@10", "recall@10",
             "f1@10", "precision@3", "recall@50", "f1@50"]
    theirs = ranx.evaluate(qrels, run, names, return_mean=False)
    ours = M.all_metrics(scores, relevant, [1, 3, 5, 10, 50], valid)
    mapping = {"hit_rate@1": "hr@1", "hit_rate@5": "hr@5", "ndcg@5": "ndcg@5", "ndcg_burges@5": "ndcg@5",
               "ndcg@10": "ndcg@10", "precision@10": "precision@10", "recall@10": "recall@10", "f1@10": "f1@10",
               "precision@3": "precision@3", "recall@50": "recall@50", "f1@50": "f1@50"}
    for name, ours_name in mapping.items():
        np.testing.assert_allclose(ours[ours_name], np.asarray(theirs[name]), rtol=1e-9, atol=1e-12, err_msg=name)


def test_auc_agrees_with_scikit_learn_including_ties():
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score
    scores, relevant, valid = _random_lists(seed=2, users=100, ties=True)
    ours = M.auc(scores, relevant, valid)
    theirs = [roc_auc_score(relevant[u, valid[u]], scores[u, valid[u]]) for u in range(len(scores))]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_tie_break_matches_a_sort_with_the_same_keys():
    # Rank with an explicit lexsort on (score desc, key asc) and compare ranks of relevant items.
    scores, relevant, valid = _random_lists(seed=3, users=80, ties=True)
    keys = np.random.default_rng(11).random(scores.shape)
    ranked = M.rank_relevant(scores, relevant, valid, tie_keys=lambda r, c: keys[r, c])
    for u in range(len(scores)):
        columns = np.flatnonzero(valid[u])
        order = columns[np.lexsort((keys[u, columns], -scores[u, columns]))]
        expected = sorted(int(np.flatnonzero(order == c)[0]) for c in np.flatnonzero(relevant[u]))
        got = sorted(ranked.ranks[u, ranked.slot_mask[u]].tolist())
        assert got == expected
