"""The new-items tables' test folds (issue 27): fold 0 and the validation items are the split's own, every fold
is disjoint from the others and from the validation items and as large as fold 0; a seed's figure over K folds is
the mean over (fold, user) pairs, worked by hand."""
import os
import sys
import types

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from tfvrec.data import splits
from tfvrec.evaluation.results import EvalResult

sys.path.insert(0, os.path.join(REPO, "tools"))
import bench_new_items  # noqa: E402


def toy(num_items=40, users=6):
    """Every user likes every third item from an offset: all 40 items have interactions."""
    rows = [(u, i) for u in range(users) for i in range(num_items) if (i + u) % 3 == 0 or u == 0]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return types.SimpleNamespace(interactions={"train": frame.iloc[::2].reset_index(drop=True),
                                               "test": frame.iloc[1::2].reset_index(drop=True)},
                                 item_ids=[f"i{n:02d}" for n in range(num_items)])


DATA = types.SimpleNamespace(test_item_fraction=0.15, validation_item_fraction=0.15, split_seed=3)


def test_fold_zero_and_the_validation_items_are_the_splits_own_and_the_folds_are_disjoint():
    dataset = toy()
    split = splits.new_items_split(dataset.interactions, dataset.item_ids, 0.15, 0.15, 3)
    validation, tests = bench_new_items.fold_items(dataset, DATA, folds=3)
    assert validation.tolist() == split.validation_items.tolist()
    assert tests[0].tolist() == split.test_items.tolist()
    assert [len(t) for t in tests] == [6, 6, 6]  # round(0.15 × 40)
    held = np.concatenate([validation, *tests])
    assert len(set(held.tolist())) == len(held) == 24  # pairwise disjoint
    # The next blocks of the split's hash order: fold 1 holds the items right after the validation items.
    keys = splits.item_keys(np.array(dataset.item_ids, dtype=object), 3)
    order = np.argsort(keys, kind="stable")
    assert sorted(order[12:18].tolist()) == tests[1].tolist()
    assert sorted(order[18:24].tolist()) == tests[2].tolist()


def test_too_many_folds_leave_no_training_item():
    with pytest.raises(ValueError, match="leave no training item"):
        bench_new_items.fold_items(toy(), DATA, folds=6)  # 6 × 6 + 6 ≥ 40


def result(users, values):
    values = np.asarray(values, float)
    return EvalResult("new_items", 1, len(users), {"recall@20": float(np.nanmean(values))}, {"recall@20": 0.0},
                      users=np.asarray(users), per_user={"recall@20": values})


def test_a_seeds_figure_over_folds_is_the_mean_over_fold_user_pairs():
    # Fold 0: users 1, 2 with R@20 0.5, 0.0; fold 1: users 2, 5, 7 with 1.0, NaN (undefined), 0.25.
    pooled = bench_new_items.pooled([result([1, 2], [0.5, 0.0]), result([2, 5, 7], [1.0, np.nan, 0.25])])
    assert pooled.users.tolist() == ["0:1", "0:2", "1:2", "1:5", "1:7"]  # user 2 counts once per fold
    assert pooled.metrics["recall@20"] == pytest.approx((0.5 + 0.0 + 1.0 + 0.25) / 4)  # not (0.25 + 0.625) / 2
    # The paired test's units line up across seeds (same folds, same users).
    again = bench_new_items.pooled([result([1, 2], [0.0, 0.0]), result([2, 5, 7], [0.0, 1.0, 0.75])])
    assert bench_new_items.per_user_mean([pooled, again], "recall@20").tolist() == pytest.approx(
        [0.25, 0.0, 0.5, 1.0, 0.5])
