"""Paired tests and intervals against hand-worked values (and scipy's own definitions)."""
import math

import numpy as np
import pytest

from tfvrec.evaluation import significance


def test_mean_ci_matches_the_t_interval_worked_by_hand():
    # values 1, 2, 3, 4: mean 2.5, sd 1.2910, t_{0.975,3} = 3.1824 → half width 2.0543
    mean, low, high = significance.mean_ci([1, 2, 3, 4])
    assert mean == pytest.approx(2.5)
    assert low == pytest.approx(2.5 - 2.0543, abs=1e-4)
    assert high == pytest.approx(2.5 + 2.0543, abs=1e-4)


def test_paired_t_test_on_hand_worked_differences():
    # differences 1, 1, 2, 0: mean 1, sd 0.8165, t = 1 / (0.8165 / 2) = 2.4495, df 3 → p = 0.0917
    result = significance.paired_test([2, 3, 4, 1], [1, 2, 2, 1], test="t")
    assert result.num_pairs == 4
    assert result.mean_difference == pytest.approx(1.0)
    assert result.p_value == pytest.approx(0.0917, abs=1e-4)
    assert result.ci_low < 1.0 < result.ci_high


def test_wilcoxon_drops_ties_and_nan_pairs():
    a = np.array([1, 1, 1, 1, 1, 1, 0, np.nan, 1.0])
    b = np.array([0, 0, 0, 0, 0, 0, 0, 1.0, 1.0])
    result = significance.paired_test(a, b, test="wilcoxon")
    assert result.num_pairs == 8  # the NaN pair is dropped before testing
    # six +1 differences, two zeros dropped: exact two-sided p = 2 / 2^6 = 0.03125
    assert result.p_value == pytest.approx(0.03125)


def test_identical_scorers_have_p_one_and_unknown_test_is_refused():
    assert significance.paired_test([0.5, 0.2], [0.5, 0.2]).p_value == 1.0
    with pytest.raises(ValueError, match="test must be one of"):
        significance.paired_test([1.0], [1.0], test="anova")
    assert significance.format_p(1e-7) == "< 1e-4"
    assert significance.format_p(math.nan) == "n/a"
