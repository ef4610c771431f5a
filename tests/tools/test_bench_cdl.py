"""The cdl-posters table's arithmetic (issue 28), with golden values worked by hand: each row's mean ± std over
training seeds, and the paired test of CDL-CE against a row on per-user P@20 averaged over the seeds — not on one
seed, not on the pooled (user, seed) pairs."""
import os
import sys

import numpy as np
import pytest

from conftest import REPO
from tfvrec.evaluation.results import EvalResult

sys.path.insert(0, os.path.join(REPO, "tools"))
import bench_cdl  # noqa: E402

USERS = np.array([0, 1, 2, 3])


def result(per_user, users=USERS):
    per_user = np.asarray(per_user, float)
    metrics = {f"{m}@{k}": float(per_user.mean()) for m in ("precision", "recall") for k in bench_cdl.KS}
    return EvalResult("candidates:100", 1, len(users), metrics, {k: 0.0 for k in metrics}, users=users,
                      per_user={bench_cdl.METRIC: per_user})


def test_per_user_values_are_averaged_over_the_seeds():
    seeds = [result([0.2, 0.4, 0.0, 0.6]), result([0.4, 0.4, 0.2, 0.2])]
    assert bench_cdl.per_user_mean(seeds, bench_cdl.METRIC).tolist() == pytest.approx([0.3, 0.4, 0.1, 0.4])


def test_seeds_must_score_the_same_users():
    with pytest.raises(ValueError, match="different users"):
        bench_cdl.per_user_mean([result([0.1] * 4), result([0.1] * 4, users=np.array([0, 1, 2, 4]))],
                                bench_cdl.METRIC)


def test_cells_are_mean_and_sample_std_over_seeds():
    assert bench_cdl.mean_std([0.2, 0.4]) == "0.3000 ± 0.1414"  # std with ddof = 1: sqrt(0.02)
    assert bench_cdl.mean_std([0.25]) == "0.2500 ± 0.0000"


def test_the_paired_test_reads_the_seed_averaged_users():
    # CDL-CE per user, averaged over two seeds: [0.3, 0.4, 0.1, 0.4]; the row: [0.1, 0.2, 0.1, 0.2].
    # Differences [0.2, 0.2, 0.0, 0.2]: mean 0.15, sample std 0.1, t = 0.15 / (0.1 / 2) = 3 on 3 df,
    # two-sided p = 0.0577 (scipy.stats.t.sf(3, 3) * 2).
    per_seed = {"CDL-CE": [result([0.2, 0.4, 0.0, 0.6]), result([0.4, 0.4, 0.2, 0.2])],
                "BPR-MF": [result([0.1, 0.2, 0.1, 0.2]), result([0.1, 0.2, 0.1, 0.2])]}
    table, users = bench_cdl.quality_table(per_seed)
    assert users == 4
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert rows["CDL-CE"].endswith("| (reference) |")
    assert rows["BPR-MF"].endswith("| 0.05767 (+0.1500) |")
    assert "| 0.3000 ± 0.0000 |" in rows["CDL-CE"]  # P@20's seed means are 0.3 and 0.3
