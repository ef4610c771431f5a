"""Which items are known when a split is judged; intervals and paired tests in the table and metrics.json."""
import json

import numpy as np
import pandas as pd
import pytest

from tfvrec.data import splits
from tfvrec.evaluation import comparison, evaluator, protocols, report
from tfvrec.evaluation.baselines import PopularityScorer, RandomScorer


class _Data:
    """The parts of a Dataset the evaluator reads: interactions by split and the catalogue size."""

    def __init__(self, **frames):
        self.interactions = {name: pd.DataFrame(rows, columns=["user", "item"]) for name, rows in frames.items()}
        self.num_items = 10
        self.path = "<test>"

    def split(self, name):
        return self.interactions[name]


def test_judging_a_split_knows_the_earlier_splits_only():
    data = _Data(train=[(0, 1), (0, 2)], train_holdout=[(0, 3)], validation=[(0, 4)], test=[(0, 5)])
    assert splits.known_splits(data, "train_holdout") == ["train"]
    assert splits.known_splits(data, "validation") == ["train", "train_holdout"]
    assert splits.known_splits(data, "test") == ["train", "train_holdout", "validation"]
    assert splits.known_splits(data, None) == ["train", "train_holdout", "validation", "test"]
    # Validating must neither draw the held-out training like as a negative nor know the test item.
    np.testing.assert_array_equal(evaluator.exclusions(data, {0: np.array([4])}, "validation")[0], [1, 2, 3])
    np.testing.assert_array_equal(evaluator.exclusions(data, {0: np.array([5])}, "test")[0], [1, 2, 3, 4])
    # An explicit file is judged against every split, its own items excepted.
    np.testing.assert_array_equal(evaluator.exclusions(data, {0: np.array([5])}, None)[0], [1, 2, 3, 4])


def test_carving_train_holdout_is_reproducible_and_keeps_every_interaction():
    rows = [(u, i) for u in range(20) for i in range(u % 5 + 1)]
    data, again = _Data(train=rows), _Data(train=rows)
    holdout = splits.carve_train_holdout(data, seed=3)
    splits.carve_train_holdout(again, seed=3)
    pd.testing.assert_frame_equal(data.split(splits.HOLDOUT_SPLIT), again.split(splits.HOLDOUT_SPLIT))
    assert len(holdout) == sum(1 for u in range(20) if u % 5 + 1 >= 3)  # users with ≥ 3 likes give one
    together = pd.concat([data.split("train"), holdout]).sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(together, pd.DataFrame(rows, columns=["user", "item"]))


def _rows(num_users=400):
    rng = np.random.default_rng(0)
    train_users = np.repeat(np.arange(num_users), 5)
    train_items = rng.integers(0, 60, size=len(train_users))
    heldout = {u: np.array([u % 7]) for u in range(num_users)}  # items 0..6: popular under the planted counts
    train_items[: num_users * 2] = rng.integers(0, 7, size=num_users * 2)
    popularity = PopularityScorer(train_items, train_users, 60)
    exclude = {u: np.array([], np.int64) for u in heldout}
    rows = [(name, protocols.evaluate(scorer, heldout, exclude, 60, "sampled:20", ks=(5,), repeats=3, seed=1,
                                      per_user=True))
            for name, scorer in (("popularity", popularity), ("random", RandomScorer(seed=2, num_items=60)))]
    return comparison.compare(rows)


def test_paired_test_and_intervals_reach_the_table_and_metrics_json(tmp_path):
    rows = _rows()
    (_, popular), (_, random) = rows
    assert popular.comparison == {} and random.compared_with == "popularity"
    low, high = popular.ci["hr@5"]
    assert low < popular.metrics["hr@5"] < high
    # Popularity beats random on these planted counts by far more than the noise.
    assert random.comparison["hr@5"]["mean_difference"] > 0.2 and random.comparison["hr@5"]["p_value"] < 1e-6
    table = report.format_table([r for _, r in rows], row_labels=[n for n, _ in rows], metrics=["hr@5", "auc"])
    assert "HR@5 95% CI" in table and "p (HR@5, paired t)" in table and "(reference)" in table
    assert "< 1e-4" in table and "paired t-test over users" in table
    path = tmp_path / "metrics.json"
    report.write_metrics_json(str(path), [r for _, r in rows])
    stored = json.loads(path.read_text())["results"][1]
    assert stored["compared_with"] == "popularity" and stored["paired_test"]["hr@5"]["p_value"] < 1e-6
    assert stored["ci95"]["hr@5"][0] < stored["metrics"]["hr@5"] < stored["ci95"]["hr@5"][1]
    assert report.read_metrics_json(str(path))[1].comparison["auc"]["test"] == "t"


def test_identical_scorers_are_not_significantly_different():
    heldout = {u: np.array([u % 9]) for u in range(50)}
    exclude = {u: np.array([], np.int64) for u in heldout}
    scorer = RandomScorer(seed=4, num_items=30)
    rows = comparison.compare([(n, protocols.evaluate(scorer, heldout, exclude, 30, "full", ks=(5,), per_user=True))
                               for n in ("a", "b")])
    assert rows[1][1].comparison["hr@5"]["p_value"] == pytest.approx(1.0)
