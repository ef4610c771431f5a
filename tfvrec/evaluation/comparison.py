"""Confidence intervals and paired tests for the rows of a results table.

Every scorer of a table is evaluated on the same users with the same candidates (the
protocol seed fixes the sampled negatives), so a user's figure under two scorers is a
pair. `compare` gives each result the 95% t interval of every metric's mean over users
and, against the table's first row (the model), a two-sided paired t-test per metric
(`tfvrec.evaluation.significance`).
"""
import numpy as np

from tfvrec.evaluation import significance


def compare(rows):
    """Annotate ``[(name, EvalResult with per_user)]`` in place: ``ci`` always, ``comparison`` for
    every row after the first of its protocol. Returns ``rows``."""
    reference = {}
    for name, result in rows:
        if result.per_user is None:
            continue
        for metric, values in result.per_user.items():
            mean, low, high = significance.mean_ci(values)
            result.ci[metric] = [low, high]
        first = reference.setdefault(result.protocol, (name, result))
        if first[1] is result:
            continue
        ref_name, ref = first
        if not np.array_equal(ref.users, result.users):
            continue  # different users: no pairing (never the case within one table)
        result.compared_with = ref_name
        result.comparison = {metric: significance.paired_test(ref.per_user[metric], values, test="t").to_dict()
                             for metric, values in result.per_user.items() if metric in ref.per_user}
    return rows
