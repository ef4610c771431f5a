"""Evaluation protocols (full ranking, sampled candidates), baselines, reporting."""
import json
import math
import os

import numpy as np
import pytest

from tfvrec.evaluation import metrics as metrics_lib
from tfvrec.evaluation.baselines import PopularityScorer, RandomScorer
from tfvrec.evaluation.protocols import (EvalResult, FullScorer, ProtocolSpec, Scorer, evaluate, items_by_user,
                                         parse_protocol)
from tfvrec.evaluation.report import format_table, read_metrics_json, write_metrics_json

NUM_ITEMS = 400


def make_data(num_users=300, num_items=NUM_ITEMS, basket=1, seed=0, popular_heldout=False):
    """Per-user training items and held-out items (disjoint), as lists indexed by user."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_items + 1) ** 1.1  # Zipf-like popularity
    weights /= weights.sum()
    train, heldout = [], []
    for _ in range(num_users):
        size = int(rng.integers(5, 40))
        picked = rng.choice(num_items, size=size + basket, replace=False, p=weights if popular_heldout else None)
        train.append(np.sort(picked[:size]))
        heldout.append(np.sort(picked[size:]))
    return train, heldout


class OracleScorer:
    """Knows the held-out items: 1 for them, 0 otherwise (so everything else ties)."""

    def __init__(self, heldout, num_items):
        self.heldout = heldout
        self.num_items = num_items

    def score(self, users, items):
        return np.stack([np.isin(row, self.heldout[u]) for u, row in zip(users, items)]).astype(float)

    def score_all(self, users):
        return self.score(users, np.broadcast_to(np.arange(self.num_items), (len(users), self.num_items)))


class ConstantScorer:
    def score(self, users, items):
        return np.zeros(items.shape)


class RecordingScorer:
    """Random scores; remembers every (user, candidate list) it was asked about."""

    def __init__(self):
        self.asked = []

    def score(self, users, items):
        self.asked.append((users.copy(), items.copy()))
        return RandomScorer(seed=5).score(users, items)


def test_scorer_interfaces():
    assert isinstance(RandomScorer(), FullScorer) and isinstance(PopularityScorer([0], [0], 3), FullScorer)
    assert isinstance(ConstantScorer(), Scorer) and not isinstance(ConstantScorer(), FullScorer)
    with pytest.raises(TypeError, match="score"):
        evaluate(object(), [[0]], None, 5, "full")


@pytest.mark.parametrize("text, expected", [
    ("full", ProtocolSpec("full")),
    (" Full ", ProtocolSpec("full")),
    ("sampled:100", ProtocolSpec("sampled", 100)),
    ("sampled:1000", ProtocolSpec("sampled", 1000)),
])
def test_parse_protocol(text, expected):
    spec = parse_protocol(text)
    assert spec == expected
    assert parse_protocol(spec) is spec
    assert parse_protocol(spec.name) == spec


@pytest.mark.parametrize("text", ["", "sampled", "sampled:", "sampled:0", "sampled:-5", "sampled:1.5", "sampled:abc",
                                  "sampled 100", "full:10", "loo", None, 100])
def test_parse_protocol_errors(text):
    with pytest.raises(ValueError, match="protocol"):
        parse_protocol(text)


@pytest.mark.parametrize("protocol", ["full", "sampled:100"])
def test_oracle_is_perfect(protocol):
    train, heldout = make_data(num_users=60, basket=3)
    result = evaluate(OracleScorer(heldout, NUM_ITEMS), heldout, train, NUM_ITEMS, protocol, ks=(1, 3), repeats=2)
    assert result.metrics["hr@1"] == 1.0
    assert result.metrics["auc"] == 1.0
    assert result.metrics["ndcg@3"] == pytest.approx(1.0)
    assert result.metrics["recall@3"] == pytest.approx(1.0)
    assert result.metrics["precision@3"] == pytest.approx(1.0)


def test_random_scorer_sampled_matches_chance():
    train, heldout = make_data(num_users=400)
    result = evaluate(RandomScorer(seed=1), heldout, train, NUM_ITEMS, "sampled:100", ks=(5,), repeats=10)
    assert result.protocol == "sampled:100" and result.repeats == 10 and result.num_users == 400
    # A fixed random model: the held-out item's score is fixed per user, so the 400 users
    # (not 4,000 user-repeats) set the noise; allow ~4 standard errors.
    assert abs(result.metrics["hr@5"] - 5 / 101) < 4 * math.sqrt(5 / 101 * 96 / 101 / 400)
    assert abs(result.metrics["auc"] - 0.5) < 4 * math.sqrt(1 / 12 / 400)
    assert result.std["hr@5"] > 0 and result.std["auc"] > 0
    assert result.info["mean_candidates_per_user"] == 101
    assert result.info["users_short_of_negatives"] == 0


def test_ties_do_not_help_under_either_protocol():
    train, heldout = make_data(num_users=400)
    sampled = evaluate(ConstantScorer(), heldout, train, NUM_ITEMS, "sampled:100", ks=(5,), repeats=5)
    # Tie-break keys change per repeat, so all 2,000 user-repeats are fresh draws.
    assert abs(sampled.metrics["hr@5"] - 5 / 101) < 4 * math.sqrt(5 / 101 * 96 / 101 / 2000)
    assert sampled.metrics["auc"] == 0.5
    full = evaluate(ConstantScorer(), heldout, train, NUM_ITEMS, "full", ks=(5,))
    assert full.metrics["auc"] == 0.5
    assert full.metrics["hr@5"] < 0.1


def test_full_is_a_single_deterministic_run():
    train, heldout = make_data(num_users=50)
    result = evaluate(RandomScorer(seed=2, num_items=NUM_ITEMS), heldout, train, NUM_ITEMS, "full", repeats=10)
    assert result.repeats == 1 and result.protocol == "full"
    assert all(value == 0.0 for value in result.std.values())
    again = evaluate(RandomScorer(seed=2, num_items=NUM_ITEMS), heldout, train, NUM_ITEMS, "full")
    assert again.metrics == result.metrics


@pytest.mark.parametrize("protocol", ["full", "sampled:50"])
def test_excluded_items_are_never_candidates(protocol):
    train, heldout = make_data(num_users=40, basket=2)
    scorer = RecordingScorer()  # no score_all: full ranking must pass explicit candidates
    evaluate(scorer, heldout, train, NUM_ITEMS, protocol, ks=(5,), repeats=3, batch_size=16)
    seen = {}
    for users, items in scorer.asked:
        for user, row in zip(users, items):
            assert not np.intersect1d(row, train[user]).size, f"user {user} was scored on a training item"
            seen.setdefault(int(user), []).append(np.unique(row))
    assert sorted(seen) == list(range(40))
    for user, rows in seen.items():
        for row in rows:
            assert np.isin(heldout[user], row).all()
            if protocol == "full":
                expected = np.setdiff1d(np.arange(NUM_ITEMS), train[user])
                np.testing.assert_array_equal(row, expected)
            else:
                assert len(row) == 50 + len(heldout[user])  # 50 distinct negatives, none held out
        if protocol != "full":
            assert len(rows) == 3 and not np.array_equal(rows[0], rows[1])  # fresh negatives per repeat


def test_score_all_and_score_paths_agree():
    train, heldout = make_data(num_users=80)
    items = np.concatenate(train)
    users = np.repeat(np.arange(80), [len(t) for t in train])
    popularity = PopularityScorer(items, users, NUM_ITEMS)

    class ScoreOnly:
        def score(self, users, items):
            return popularity.score(users, items)

    with_all = evaluate(popularity, heldout, train, NUM_ITEMS, "full", ks=(5, 20))
    without = evaluate(ScoreOnly(), heldout, train, NUM_ITEMS, "full", ks=(5, 20))
    for name, value in with_all.metrics.items():
        assert without.metrics[name] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize("protocol", ["full", "sampled:30"])
def test_results_do_not_depend_on_batch_size_or_input_form(protocol):
    train, heldout = make_data(num_users=70, basket=2)
    scorer = RandomScorer(seed=3, num_items=NUM_ITEMS)
    a = evaluate(scorer, heldout, train, NUM_ITEMS, protocol, repeats=3, batch_size=7)
    b = evaluate(scorer, dict(enumerate(heldout)), dict(enumerate(train)), NUM_ITEMS, protocol, repeats=3,
                 batch_size=1000)
    for name in a.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=1e-12), name
        assert a.std[name] == pytest.approx(b.std[name], abs=1e-12), name
    c = evaluate(scorer, heldout, train, NUM_ITEMS, protocol, repeats=3, seed=1)
    if protocol != "full":
        assert c.metrics != a.metrics


def test_users_without_heldout_are_skipped_and_short_pools_recorded():
    num_items = 30
    train = [np.arange(20), np.arange(5), np.arange(3)]
    heldout = [[25], [], [10, 11]]
    result = evaluate(RandomScorer(seed=0), heldout, train, num_items, "sampled:15", ks=(5,), repeats=2)
    assert result.num_users == 2
    assert result.info["users_skipped_no_heldout"] == 1
    # User 0 has only 30 - 20 - 1 = 9 possible negatives: all of them are used.
    assert result.info["users_short_of_negatives"] == 1
    assert result.info["mean_candidates_per_user"] == pytest.approx(((1 + 9) + (2 + 15)) / 2)


def test_heldout_item_in_exclude_stays_a_candidate():
    result = evaluate(OracleScorer([[3]], 10), [[3]], [[1, 2, 3]], 10, "full", ks=(1,))
    assert result.metrics["hr@1"] == 1.0
    assert result.info["heldout_also_excluded"] == 1


def test_popularity_beats_random_when_heldout_items_are_popular():
    train, heldout = make_data(num_users=300, popular_heldout=True)
    items = np.concatenate(train)
    users = np.repeat(np.arange(len(train)), [len(t) for t in train])
    popularity = PopularityScorer(items, users, NUM_ITEMS)
    for protocol in ("sampled:100", "full"):
        pop = evaluate(popularity, heldout, train, NUM_ITEMS, protocol, ks=(10,), repeats=3)
        rnd = evaluate(RandomScorer(seed=0, num_items=NUM_ITEMS), heldout, train, NUM_ITEMS, protocol, ks=(10,),
                       repeats=3)
        assert pop.metrics["hr@10"] > 2 * rnd.metrics["hr@10"], protocol
        assert pop.metrics["auc"] > rnd.metrics["auc"] + 0.1, protocol


def test_popularity_counts_distinct_users():
    scorer = PopularityScorer(train_items=[0, 0, 0, 1, 2, 2], train_users=[5, 5, 6, 5, 5, 6], num_items=4)
    np.testing.assert_array_equal(scorer.score_all(np.array([0, 1])), [[2, 1, 2, 0]] * 2)
    np.testing.assert_array_equal(scorer.score(np.array([0]), np.array([[3, 0]])), [[0, 2]])
    with pytest.raises(ValueError, match="equally long"):
        PopularityScorer([0, 1], [0], 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        PopularityScorer([4], [0], 4)


def test_random_scorer_is_a_fixed_function_of_the_pair():
    scorer = RandomScorer(seed=4, num_items=50)
    full = scorer.score_all(np.array([3, 7]))
    assert full.shape == (2, 50) and 0 <= full.min() and full.max() < 1
    np.testing.assert_array_equal(scorer.score(np.array([7]), np.array([[10, 2]])), full[1:, [10, 2]])
    with pytest.raises(ValueError, match="num_items"):
        RandomScorer(seed=0).score_all(np.array([0]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(heldout=[[500]]), "outside"),
    (dict(heldout={-1: [0]}), "non-negative"),
    (dict(heldout="abc"), "list indexed by user"),
    (dict(repeats=0), "repeats"),
    (dict(batch_size=0), "batch_size"),
    (dict(ks=(0,)), "positive integer"),
    (dict(protocol="sampled:x"), "protocol"),
])
def test_evaluate_input_errors(kwargs, message):
    arguments = dict(scorer=ConstantScorer(), heldout=[[1]], exclude=None, num_items=NUM_ITEMS,
                     protocol="sampled:10")
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        evaluate(**arguments)


def test_scorer_with_wrong_shape_is_reported():
    class Broken:
        def score(self, users, items):
            return np.zeros(len(users))

    with pytest.raises(ValueError, match="shape"):
        evaluate(Broken(), [[1]], None, NUM_ITEMS, "sampled:10")


def test_sampling_is_uniform_over_allowed_items():
    # 10 allowed negatives, 5 drawn per repeat: each should be picked half the time.
    num_items = 20
    train = [np.arange(9)]
    scorer = RecordingScorer()
    evaluate(scorer, [[9]], train, num_items, "sampled:5", ks=(1,), repeats=400)
    counts = np.zeros(num_items)
    for _, items in scorer.asked:
        counts[np.unique(items[0])] += 1
    assert counts[:9].sum() == 0 and counts[9] == 400
    assert np.all(np.abs(counts[10:] / 400 - 0.5) < 4 * math.sqrt(0.25 / 400))
    # Large pool (the rejection-sampling path): 40 of 990 allowed items, 300 repeats.
    scorer = RecordingScorer()
    evaluate(scorer, [[0]], [np.arange(1, 10)], 1000, "sampled:40", ks=(1,), repeats=300)
    counts = np.zeros(1000)
    for _, items in scorer.asked:
        counts[np.unique(items[0])] += 1
    assert counts[1:10].sum() == 0
    expected = 300 * 40 / 990
    assert abs(counts[10:].mean() - expected) < 1e-9  # exactly 40 distinct per repeat
    chi2 = ((counts[10:] - expected) ** 2 / expected).sum()
    assert chi2 < 990 + 5 * math.sqrt(2 * 990)


def test_items_by_user():
    grouped = items_by_user([2, 0, 2, 2], [5, 1, 3, 5])
    assert list(grouped) == [0, 2]
    np.testing.assert_array_equal(grouped[2], [3, 5])
    np.testing.assert_array_equal(grouped[0], [1])


# -- reporting ----------------------------------------------------------------------------------

def _two_results():
    train, heldout = make_data(num_users=50)
    scorer = RandomScorer(seed=0, num_items=NUM_ITEMS)
    sampled = evaluate(scorer, heldout, train, NUM_ITEMS, "sampled:100", ks=(5, 10), repeats=4)
    full = evaluate(scorer, heldout, train, NUM_ITEMS, "full", ks=(20, 100))
    return sampled, full


def test_metric_keys_and_json_round_trip(tmp_path):
    sampled, full = _two_results()
    assert list(sampled.metrics) == metrics_lib.metric_names([5, 10])
    assert {"hr@5", "ndcg@10", "precision@5", "recall@10", "f1@5", "auc"} <= set(sampled.metrics)
    path = tmp_path / "out" / "metrics.json"
    write_metrics_json(str(path), [sampled, full], extra={"model": "random", "dataset": "synthetic"})
    data = json.loads(path.read_text())
    assert data["model"] == "random" and len(data["results"]) == 2
    first = data["results"][0]
    assert first["protocol"] == "sampled:100" and first["repeats"] == 4 and first["num_users"] == 50
    assert set(first["metrics"]) == set(first["std"]) == set(metrics_lib.metric_names([5, 10]))
    assert data["results"][1]["protocol"] == "full"
    assert {"hr@20", "ndcg@100", "auc"} <= set(data["results"][1]["metrics"])
    assert os.listdir(path.parent) == ["metrics.json"]  # the temporary file was renamed away
    back = read_metrics_json(str(path))
    assert back[0] == sampled and back[1] == EvalResult.from_dict(full.to_dict())
    assert back[1].metrics == full.metrics
    with pytest.raises(ValueError, match="results"):
        write_metrics_json(str(path), [full], extra={"results": []})


def test_json_writes_nan_as_null(tmp_path):
    result = EvalResult("full", 1, 0, {"auc": math.nan}, {"auc": 0.0})
    path = tmp_path / "m.json"
    write_metrics_json(str(path), [result])
    assert json.loads(path.read_text())["results"][0]["metrics"]["auc"] is None
    assert math.isnan(read_metrics_json(str(path))[0].metrics["auc"])


def test_format_table_names_the_protocol_of_every_figure():
    sampled, full = _two_results()
    table = format_table([sampled, full], title="Random baseline", row_labels=["rand-a", "rand-b"])
    lines = table.splitlines()
    assert lines[0] == "Random baseline"
    header = lines[1]
    for column in ("model", "protocol", "HR@5", "nDCG@10", "P@20", "R@100", "F1@5", "AUC"):
        assert column in header
    sampled_row = next(line for line in lines if line.startswith("| rand-a"))
    full_row = next(line for line in lines if line.startswith("| rand-b"))
    assert "sampled:100, 4 repeats: mean ± std" in sampled_row
    assert f"{sampled.metrics['hr@5']:.4f} ± {sampled.std['hr@5']:.4f}" in sampled_row
    assert "full, single run" in full_row and "±" not in full_row
    assert "—" in full_row  # HR@5 was not measured under full
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns
    with pytest.raises(ValueError, match="labels"):
        format_table([sampled], row_labels=["a", "b"])
