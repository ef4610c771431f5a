"""Evaluate a trained model and the baselines on a held-out split, under each protocol."""
import numpy as np
import pandas as pd

from tfvrec import registry
from tfvrec.data.splits import known_splits, training_items
from tfvrec.evaluation import baselines, comparison, protocols


def heldout_by_user(frame):
    """``{user: sorted unique held-out item indices}`` from an interaction frame."""
    grouped = frame.groupby("user")["item"].unique()
    return {int(u): np.sort(np.asarray(items, dtype=np.int64)) for u, items in grouped.items()}


def exclusions(dataset, heldout, judged=None):
    """Per user: the items the user is known to have interacted with when split ``judged`` is
    evaluated (`tfvrec.data.splits.known_splits`; None: an explicit held-out file, judged
    against every split), except the held-out ones. Held-out items stay rankable in full
    ranking; sampled negatives never come from known items.
    """
    frames = [dataset.split(name) for name in known_splits(dataset, judged)]
    if not frames:
        return {user: np.empty(0, np.int64) for user in heldout}
    known = pd.concat([f[["user", "item"]] for f in frames]).drop_duplicates()
    by_user = known.groupby("user")["item"].unique()
    out = {}
    for user, items in heldout.items():
        seen = np.asarray(by_user.get(user, np.empty(0, np.int64)), dtype=np.int64)
        out[user] = np.setdiff1d(seen, items)
    return out


def candidate_pool(dataset, protocol, heldout=None):
    """The items ``protocol`` may rank (`protocols.evaluate`'s ``candidate_pool``): for ``new_items``,
    every catalogue item without an interaction in ``train`` or ``train_holdout`` (sorted indices:
    the held-out items of an item-disjoint split, and items nobody has interacted with); for a
    protocol kind a model package registered a pool for (`tfvrec.registry.register_candidate_pool`,
    e.g. CDL's ``interest_candidates``), that function's per-user pool of ``heldout``'s users;
    None (the whole catalogue) for the other protocols."""
    kind = protocols.parse_protocol(protocol).kind
    if kind == protocols.NEW_ITEMS:
        return np.setdiff1d(np.arange(dataset.num_items, dtype=np.int64), training_items(dataset),
                            assume_unique=True)
    pool = registry.candidate_pool_function(kind)
    return None if pool is None else pool(dataset, heldout)


# The engine's own baselines; model packages register their papers' (``ModelSpec.baselines``).
@registry.register_baseline("popularity")
def _popularity(dataset, config, heldout):
    train = dataset.split("train")
    return baselines.PopularityScorer(train["item"].values, train["user"].values, dataset.num_items)


@registry.register_baseline("random")
def _random(dataset, config, heldout):
    return baselines.RandomScorer(seed=config.eval.seed, num_items=dataset.num_items)


# The content baselines (metadata_knn, visual_knn) register themselves on import.
from tfvrec.evaluation import content_baselines  # noqa: E402,F401


def baseline_scorers(names, dataset, config, heldout):
    """``{name: scorer}`` of the ``eval.baselines`` rows (any model package's baselines may be named)."""
    try:
        factories = registry.load_baselines(names)
    except LookupError as e:
        raise ValueError(str(e)) from None
    return {name: factory(dataset, config, heldout) for name, factory in factories.items()}


def evaluate_scorers(scorers, dataset, heldout, protocol_names, ks, repeats, seed, judged=None):
    """Returns ``[(scorer_name, EvalResult)]`` for every scorer × protocol (``judged``: see `exclusions`),
    each with 95% intervals over users and, after the first scorer, its paired test against it."""
    exclude = exclusions(dataset, heldout, judged)
    rows = []
    for protocol in protocol_names:
        pool = candidate_pool(dataset, protocol, heldout)
        for name, scorer in scorers.items():
            result = protocols.evaluate(scorer, heldout, exclude, dataset.num_items, protocol, ks=tuple(ks),
                                        repeats=repeats, seed=seed, per_user=True, candidate_pool=pool)
            rows.append((name, result))
    return comparison.compare(rows)
