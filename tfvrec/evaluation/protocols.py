"""The papers' evaluation protocols: who is ranked against what, and how figures are reported.

The protocols of the papers in the zoo, and the new-items one:

``full``
    CuratorNet (Cartagena et al., §4.2): the held-out items (the user's last
    purchase basket) are ranked against *every* item not in the user's training history;
    AUC, P/R/nDCG @20 and @100. Deterministic, so a single run (std 0).

``sampled:N``
    HASC (Wu et al., §4.1): leave-one-out; the held-out item is ranked among
    itself plus N sampled items the user never rated; HR@K, NDCG@K, repeated 10 times
    with fresh negatives and averaged. The paper's text says N=1000, its published
    numbers match N=100 (BPR-MF reaches the paper's BPR figures at N=100, not at N=1000),
    so both are reported, each labelled with its N.

``candidates:N``
    CDL (Lei et al., §6): each user's held-out items (at most ``MAX_CANDIDATE_POSITIVES`` = 20,
    a random subset per repeat when there are more) are ranked among N candidates in all, the
    rest drawn uniformly from the items the user never interacted with; with 20 held-out
    items among 100, a random ranking has P@K = 0.2. Repeated like ``sampled``.

``interest_candidates:N``
    CDL's own candidate rule (Lei et al., §5: "each candidate shall have at least one tag of
    the user's interests"): ``candidates:N`` whose other candidates are drawn only from the
    items sharing an interest tag with the user — a per-user ``candidate_pool`` a model
    package computes (`tfvrec.registry.register_candidate_pool`; CDL's:
    `tfvrec.models.cdl.protocol.interest_candidate_pool`), which holds the user's held-out
    items too, so all of them are ranked as in ``candidates:N``.

``new_items``
    The regime of new content (CuratorNet's one-of-a-kind art, CDL's §5 new images): each
    user's held-out items ranked, as in ``full``, among the catalogue items that have no
    training interaction (``train`` or ``train_holdout``) — the images nobody has seen a
    reaction to yet. Held-out items that did have one are dropped. It is ``full`` within a
    ``candidate_pool``, which `tfvrec.evaluation.evaluator.candidate_pool` computes from the
    data set; ``full`` over the whole catalogue (warm and new items together) is the mixed view.

**Candidate pool.** `evaluate`'s ``candidate_pool`` restricts any protocol to a set of items:
a 1-D array of item indices (the same for every user) or a mapping user → item indices (a
user missing from it has no candidate). Candidates, and the sampled negatives of ``sampled``
and ``candidates``, come only from the pool; held-out items outside it are dropped and counted
(``info["heldout_outside_pool"]``), and users left with no held-out item are skipped and
counted (``info["users_skipped_outside_pool"]``).

Negatives are drawn uniformly without replacement from the items that are neither in the
user's ``exclude`` set nor held out. A user with fewer than N such items gets all of them,
and :attr:`EvalResult.info` counts those users (``users_short_of_negatives``).

Ties are broken by a pseudo-random key per (seed, repeat, user, item)
(:func:`tfvrec.evaluation.metrics.pair_keys`), so an uninformative scorer gets the figures
of a random ranking, never the optimistic ones, and the result does not depend on
``batch_size`` or on the order of candidates.
"""
import dataclasses
import math
import re
from typing import Dict, Iterable, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from tfvrec import progress
from tfvrec.evaluation import metrics as metrics_lib


# -- scorer interface -----------------------------------------------------------------------

@runtime_checkable
class Scorer(Protocol):
    """Anything that scores (user, item) pairs; higher means more recommended."""

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``users`` int64 ``[B]``, ``items`` int64 ``[B, C]`` -> float ``[B, C]``."""
        ...


@runtime_checkable
class FullScorer(Scorer, Protocol):
    """A scorer that can also score the whole catalogue at once (used by ``full`` when present)."""

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """``users`` int64 ``[B]`` -> float ``[B, num_items]``."""
        ...


# -- protocol spec ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    """``kind`` is ``"full"``, ``"new_items"``, ``"sampled"``, ``"candidates"`` or ``"interest_candidates"``;
    ``num_negatives`` is N for ``sampled`` (negatives per user) and for the candidates kinds (candidates per
    user in all)."""

    kind: str
    num_negatives: Optional[int] = None

    def __post_init__(self):
        if self.kind in RANK_ALL:
            if self.num_negatives is not None:
                raise ValueError(f"the {self.kind} protocol takes no number of negatives")
        elif self.kind in ("sampled",) + CANDIDATES:
            if (isinstance(self.num_negatives, bool) or not isinstance(self.num_negatives, (int, np.integer))
                    or self.num_negatives < 1):
                raise ValueError(f"sampled needs a positive number of negatives, got {self.num_negatives!r}")
        else:
            raise ValueError(f"unknown protocol kind {self.kind!r}; expected 'full', 'new_items', 'sampled', "
                             "'candidates' or 'interest_candidates'")
        if self.kind in CANDIDATES and self.num_negatives <= MAX_CANDIDATE_POSITIVES:
            raise ValueError(f"{self.kind}:N needs N > {MAX_CANDIDATE_POSITIVES} (the held-out items per user), "
                             f"got {self.num_negatives}")

    @property
    def name(self) -> str:
        return self.kind if self.kind in RANK_ALL else f"{self.kind}:{self.num_negatives}"

    def __str__(self):
        return self.name


_SAMPLED = re.compile(r"(sampled|candidates|interest_candidates):(\d+)")
MAX_CANDIDATE_POSITIVES = 20  # candidates:N — held-out items per user (CDL's 20 hidden favourites)
RANK_ALL = ("full", "new_items")  # every allowed item is a candidate: deterministic, one run
NEW_ITEMS = "new_items"
INTEREST_CANDIDATES = "interest_candidates"
CANDIDATES = ("candidates", INTEREST_CANDIDATES)  # N candidates in all, up to 20 of them held out


def parse_protocol(text: Union[str, ProtocolSpec]) -> ProtocolSpec:
    """``"full"`` or ``"sampled:N"`` (N >= 1 negatives per user) -> :class:`ProtocolSpec`."""
    if isinstance(text, ProtocolSpec):
        return text
    if not isinstance(text, str):
        raise ValueError(f"protocol must be a string like 'full' or 'sampled:100', got {text!r}")
    cleaned = text.strip().lower()
    if cleaned in RANK_ALL:
        return ProtocolSpec(cleaned)
    match = _SAMPLED.fullmatch(cleaned)
    if match and int(match.group(2)) >= 1:
        return ProtocolSpec(match.group(1), int(match.group(2)))
    raise ValueError(f"unknown evaluation protocol {text!r}: expected 'full' (rank every item the user "
                     f"has not trained on), 'new_items' (rank among the items without a training interaction), "
                     f"'sampled:N' with N >= 1 sampled negatives, e.g. 'sampled:100', or "
                     f"'candidates:N' (up to {MAX_CANDIDATE_POSITIVES} held-out items filled to N candidates), "
                     "e.g. 'candidates:100', or 'interest_candidates:N' (the same, the others sharing an interest "
                     "tag with the user: CDL §5)")


# -- result -------------------------------------------------------------------------------

@dataclasses.dataclass
class EvalResult:
    """Figures of one protocol run.

    ``metrics`` maps names like ``hr@5``, ``ndcg@20``, ``auc`` to the mean over users
    (for ``sampled``, the mean over repeats of that); ``std`` to the standard deviation
    across repeats (sample std, ddof=1; 0 for a single run). ``info`` records how the
    figures were obtained (number of items, cut-offs, seed, users skipped, ...).
    """

    protocol: str
    repeats: int
    num_users: int
    metrics: Dict[str, float]
    std: Dict[str, float]
    info: Dict[str, object] = dataclasses.field(default_factory=dict)
    # With ``evaluate(..., per_user=True)``: ``users`` [U] and per metric the user's value
    # averaged over repeats [U] (NaN where undefined), for paired tests between scorers
    # evaluated with the same seed (same candidates). Not written to metrics.json.
    users: Optional[np.ndarray] = dataclasses.field(default=None, repr=False, compare=False)
    per_user: Optional[Dict[str, np.ndarray]] = dataclasses.field(default=None, repr=False, compare=False)
    # 95% confidence interval of each figure over users ([low, high]; `tfvrec.evaluation.comparison`),
    # and the paired test of the table's first row against this one (metric -> PairedTest dict).
    ci: Dict[str, list] = dataclasses.field(default_factory=dict)
    compared_with: str = ""
    comparison: Dict[str, dict] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "repeats": self.repeats,
            "num_users": self.num_users,
            "metrics": {name: _json_float(value) for name, value in self.metrics.items()},
            "std": {name: _json_float(value) for name, value in self.std.items()},
            "info": _json_safe(self.info),
            "ci95": _json_safe(self.ci),
            "compared_with": self.compared_with,
            "paired_test": _json_safe(self.comparison),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "EvalResult":
        def floats(values):
            return {name: (math.nan if value is None else float(value)) for name, value in values.items()}
        return cls(protocol=data["protocol"], repeats=int(data["repeats"]), num_users=int(data["num_users"]),
                   metrics=floats(data["metrics"]), std=floats(data["std"]), info=dict(data.get("info", {})),
                   ci=dict(data.get("ci95", {})), compared_with=data.get("compared_with", ""),
                   comparison=dict(data.get("paired_test", {})))

    def describe_protocol(self) -> str:
        """How a figure of this result was obtained, e.g. ``sampled:100, 10 repeats: mean ± std``."""
        if self.repeats > 1:
            return f"{self.protocol}, {self.repeats} repeats: mean ± std"
        return f"{self.protocol}, single run" if self.protocol in RANK_ALL else f"{self.protocol}, 1 repeat"


# -- evaluation -------------------------------------------------------------------------------

UserItems = Union[Mapping[int, Iterable[int]], Sequence[Iterable[int]]]
_NO_ITEMS = np.empty(0, dtype=np.int64)


def items_by_user(users, items) -> Dict[int, np.ndarray]:
    """Group parallel ``users`` / ``items`` arrays (e.g. a split's columns) into ``{user: items}``."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(f"users and items must be 1-D and equally long, got {users.shape} and {items.shape}")
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(users)]
    return {int(users[s]): np.unique(items[s:e]) for s, e in zip(starts, ends)}


CandidatePool = Union[np.ndarray, Sequence[int], Mapping[int, Iterable[int]]]


def evaluate(scorer: Scorer, heldout: UserItems, exclude: Optional[UserItems], num_items: int,
             protocol: Union[str, ProtocolSpec], ks: Sequence[int] = (5, 10, 20), repeats: int = 10,
             seed: int = 0, batch_size: Optional[int] = None, per_user: bool = False,
             candidate_pool: Optional[CandidatePool] = None) -> EvalResult:
    """Evaluate ``scorer`` under ``protocol`` (``"full"``, ``"new_items"``, ``"sampled:N"``, ``"candidates:N"``,
    ``"interest_candidates:N"``).

    ``heldout``: per user (list indexed by user, or dict user -> items) the held-out item
    indices; users with none are skipped. ``exclude``: per user the items never used as
    candidates or negatives (typically the training items; ``None`` = nothing). A held-out
    item is always a candidate, even if also listed in ``exclude`` (``info`` counts such
    pairs as ``heldout_also_excluded``). ``repeats`` applies to ``sampled`` only; ``full``
    is deterministic and runs once. ``batch_size`` users are scored at a time; by default
    it is chosen so a batch holds about 2M scores, which keeps full ranking of a
    31,460-item catalogue (66 users a batch) to some tens of MB. ``per_user`` keeps each
    user's figures (mean over repeats) in ``EvalResult.per_user`` for paired tests.
    ``candidate_pool`` (required by ``new_items`` and ``interest_candidates``): the only items that may be candidates or
    negatives — a 1-D array of item indices, or a mapping user → item indices (see the module
    docstring); held-out items outside it are dropped and counted in ``info``.
    """
    spec = parse_protocol(protocol)
    names = metrics_lib.metric_names(ks)  # validates ks
    ks = [int(k) for k in ks]
    num_items = _positive_int(num_items, "num_items")
    repeats = _positive_int(repeats, "repeats")
    if not isinstance(scorer, Scorer):
        raise TypeError(f"{type(scorer).__name__} has no score(users, items) method")
    heldout_map = _as_user_items(heldout, num_items, "heldout")
    exclude_map = {} if exclude is None else _as_user_items(exclude, num_items, "exclude")
    if spec.kind == NEW_ITEMS and candidate_pool is None:
        raise ValueError("the new_items protocol ranks among the items without a training interaction: pass them "
                         "as candidate_pool (tfvrec.evaluation.evaluator.candidate_pool computes it from the data set)")
    if spec.kind == INTEREST_CANDIDATES and candidate_pool is None:
        raise ValueError("the interest_candidates protocol draws each user's candidates from the items sharing an "
                         "interest tag with them: pass them as candidate_pool (tfvrec.evaluation.evaluator."
                         "candidate_pool computes it from the data set)")
    pools = _as_pools(candidate_pool, num_items)
    with_heldout = sorted(u for u, items in heldout_map.items() if len(items))
    info = {"num_items": num_items, "ks": ks, "seed": seed,
            "users_skipped_no_heldout": len(heldout_map) - len(with_heldout)}
    if pools is not None:
        heldout_map, outside = _restrict_to_pools(heldout_map, with_heldout, pools)
        with_heldout = [u for u in with_heldout if len(heldout_map[u])]
        info["candidate_pool_size"] = (len(pools.shared) if pools.shared is not None else
                                       float(np.mean([len(pools.get(u)) for u in with_heldout] or [0])))
        info["heldout_outside_pool"] = outside
        info["users_skipped_outside_pool"] = len(heldout_map) - info["users_skipped_no_heldout"] - len(with_heldout)
    users = np.array(with_heldout, dtype=np.int64)
    overlap = sum(_count_common(heldout_map[u], exclude_map.get(u, _NO_ITEMS)) for u in users)
    info["heldout_also_excluded"] = int(overlap)
    if batch_size is None:
        width = num_items if spec.kind in RANK_ALL else spec.num_negatives + max(
            (len(heldout_map[u]) for u in users), default=1)
        batch_size = max(1, min(2048, (1 << 21) // max(width, 1)))
    batch_size = _positive_int(batch_size, "batch_size")

    run_count = 1 if spec.kind in RANK_ALL else repeats
    if spec.kind not in RANK_ALL:
        # Never a negative: the user's excluded items and the held-out items themselves.
        forbidden_map = {int(u): np.union1d(heldout_map[u], exclude_map.get(u, _NO_ITEMS)) for u in users}
    per_repeat = {name: [] for name in names}
    user_sums = {name: np.zeros(len(users)) for name in names} if per_user else None
    short_users = 0
    candidate_total = 0
    auc_undefined = 0
    for repeat in range(run_count):
        sums = dict.fromkeys(names, 0.0)
        counts = dict.fromkeys(names, 0)
        tie_seed = _derived_seed(seed, repeat, 0)
        sample_seed = _derived_seed(seed, repeat, 1)
        for start in progress.bar(range(0, len(users), batch_size), desc=f"evaluating {spec.name}", unit="batch"):
            batch_users = users[start:start + batch_size]
            if spec.kind in RANK_ALL:
                scores, relevant, valid, items = _full_batch(scorer, batch_users, heldout_map, exclude_map, num_items,
                                                             pools)
            else:
                scores, relevant, valid, items, short = _sampled_batch(
                    scorer, batch_users, heldout_map, forbidden_map, num_items, spec.num_negatives, sample_seed,
                    total=spec.kind in CANDIDATES, pools=pools)
                short_users += short
            candidate_total += int(valid.sum())
            values = metrics_lib.all_metrics(
                scores, relevant, ks, valid,
                tie_keys=lambda rows, columns: metrics_lib.pair_keys(tie_seed, batch_users[rows], items[rows, columns]))
            auc_undefined += int(np.isnan(values["auc"]).sum())
            if per_user:
                for name in names:
                    user_sums[name][start:start + len(batch_users)] += values[name]
            for name in names:
                finite = ~np.isnan(values[name])
                sums[name] += float(values[name][finite].sum())
                counts[name] += int(finite.sum())
        for name in names:
            per_repeat[name].append(sums[name] / counts[name] if counts[name] else math.nan)

    info["mean_candidates_per_user"] = candidate_total / (run_count * len(users)) if len(users) else 0.0
    if spec.kind not in RANK_ALL:
        info["users_short_of_negatives"] = short_users // run_count
    if auc_undefined:
        # Only possible when a user has no irrelevant candidate at all.
        info["users_without_auc"] = auc_undefined // run_count
    means = {name: float(np.mean(values)) for name, values in per_repeat.items()}
    stds = {name: float(np.std(values, ddof=1)) if run_count > 1 else 0.0 for name, values in per_repeat.items()}
    result = EvalResult(protocol=spec.name, repeats=run_count, num_users=len(users), metrics=means, std=stds,
                        info=info)
    if per_user:
        result.users = users
        result.per_user = {name: total / run_count for name, total in user_sums.items()}
    return result


class _Pools:
    """A candidate pool: ``shared`` (sorted item indices, every user) or ``by_user`` (user → sorted indices)."""

    def __init__(self, shared=None, by_user=None):
        self.shared, self.by_user = shared, by_user

    def get(self, user):
        return self.shared if self.shared is not None else self.by_user.get(int(user), _NO_ITEMS)


def _as_pools(candidate_pool, num_items) -> Optional[_Pools]:
    if candidate_pool is None:
        return None
    if isinstance(candidate_pool, Mapping):
        return _Pools(by_user=_as_user_items(candidate_pool, num_items, "candidate_pool"))
    items = np.asarray(candidate_pool)
    if items.ndim != 1 or not (items.size == 0 or np.issubdtype(items.dtype, np.integer)):
        raise ValueError(f"candidate_pool must be a 1-D array of item indices or a mapping user -> item indices, "
                         f"got {type(candidate_pool).__name__} of shape {items.shape} ({items.dtype})")
    return _Pools(shared=_as_user_items({0: items.astype(np.int64)}, num_items, "candidate_pool")[0])


def _restrict_to_pools(heldout_map, users, pools):
    """Held-out items inside each user's pool, and how many (user, item) pairs fell outside."""
    restricted, outside = dict(heldout_map), 0
    for user in users:
        items = heldout_map[user]
        inside = items[_sorted_isin(items, pools.get(user))]
        outside += len(items) - len(inside)
        restricted[user] = inside
    return restricted, int(outside)


def _sorted_isin(items, sorted_pool):
    """Mask of ``items`` that are in ``sorted_pool`` (sorted, distinct)."""
    if not len(sorted_pool):
        return np.zeros(len(items), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_pool, items), len(sorted_pool) - 1)
    return sorted_pool[position] == items


def _full_batch(scorer, users, heldout_map, exclude_map, num_items, pools=None):
    """Score every item (of the pool); mask the excluded ones (held-out items always stay candidates)."""
    batch = len(users)
    if pools is None:
        valid = np.ones((batch, num_items), dtype=bool)
    else:
        valid = np.zeros((batch, num_items), dtype=bool)
        if pools.shared is not None:
            valid[:, pools.shared] = True
        else:
            for row, user in enumerate(users):
                valid[row, pools.get(user)] = True
    relevant = np.zeros((batch, num_items), dtype=bool)
    for row, user in enumerate(users):
        valid[row, exclude_map.get(int(user), _NO_ITEMS)] = False
        relevant[row, heldout_map[int(user)]] = True
    valid |= relevant
    score_all = getattr(scorer, "score_all", None)
    if callable(score_all):
        items = np.broadcast_to(np.arange(num_items, dtype=np.int64), (batch, num_items))
        scores = _check_scores(score_all(users.copy()), (batch, num_items), "score_all")
        return scores, relevant, valid, items
    # Without score_all, ask only about real candidates so the scorer never sees an excluded
    # item; rows are padded with the user's first held-out item and masked out.
    width = int(valid.sum(axis=1).max())
    items = np.empty((batch, width), dtype=np.int64)
    row_valid = np.zeros((batch, width), dtype=bool)
    for row, user in enumerate(users):
        candidates = np.flatnonzero(valid[row])
        items[row, :len(candidates)] = candidates
        items[row, len(candidates):] = heldout_map[int(user)][0]
        row_valid[row, :len(candidates)] = True
    row_relevant = relevant[np.arange(batch)[:, None], items] & row_valid
    scores = _check_scores(scorer.score(users.copy(), items.copy()), items.shape, "score")
    return scores, row_relevant, row_valid, items


def _sampled_batch(scorer, users, heldout_map, forbidden_map, num_items, num_negatives, sample_seed, total=False,
                   pools=None):
    """Held-out items + ``num_negatives`` uniform negatives per user, padded to one width. With
    ``total`` (``candidates:N``): at most `MAX_CANDIDATE_POSITIVES` held-out items (a random subset
    per repeat) and negatives filling each user's list to ``num_negatives`` candidates. With
    ``pools``, negatives come from each user's pool only."""
    positives = [heldout_map[int(user)] for user in users]
    forbidden = [forbidden_map[int(user)] for user in users]
    if not total:
        negatives = _draw_negatives(sample_seed, users, forbidden, num_items, num_negatives, pools)
        short = sum(len(n) < num_negatives for n in negatives)
    else:
        positives = [np.sort(np.random.default_rng([sample_seed, int(user), 2]).choice(
            pos, MAX_CANDIDATE_POSITIVES, replace=False)) if len(pos) > MAX_CANDIDATE_POSITIVES else pos
            for user, pos in zip(users, positives)]
        wanted = np.array([num_negatives - len(pos) for pos in positives])
        negatives = [None] * len(users)
        for count in np.unique(wanted):
            rows = np.flatnonzero(wanted == count)
            drawn = _draw_negatives(sample_seed, users[rows], [forbidden[r] for r in rows], num_items, int(count),
                                    pools)
            for r, n in zip(rows, drawn):
                negatives[r] = n
        short = sum(len(n) < w for n, w in zip(negatives, wanted))
    width = max(len(p) + len(n) for p, n in zip(positives, negatives))
    batch = len(users)
    items = np.empty((batch, width), dtype=np.int64)
    relevant = np.zeros((batch, width), dtype=bool)
    valid = np.zeros((batch, width), dtype=bool)
    for row, (pos, neg) in enumerate(zip(positives, negatives)):
        count = len(pos) + len(neg)
        items[row, :count] = np.concatenate([pos, neg])
        items[row, count:] = pos[0]
        relevant[row, :len(pos)] = True
        valid[row, :count] = True
    scores = _check_scores(scorer.score(users.copy(), items.copy()), items.shape, "score")
    return scores, relevant, valid, items, short


_SAMPLING_CELLS = 1 << 21  # bound on the draws (and lookup-table cells) held at once


def _draw_negatives(sample_seed, users, forbidden, num_items, count, pools):
    """`_sample_negatives` from the whole catalogue, or from each user's pool: drawn in the pool's own
    index space (position j of the sorted pool), so a pool of every item draws exactly what no pool
    draws, and no per-user complement of the pool is ever built."""
    if pools is None:
        return _sample_negatives(sample_seed, users, forbidden, num_items, count)
    out = [None] * len(users)
    groups = {}
    for row, user in enumerate(users):  # users sharing one pool are drawn for together
        groups.setdefault(id(pools.get(user)), []).append(row)
    for rows in groups.values():
        pool = pools.get(users[rows[0]])
        local = [np.searchsorted(pool, forbidden[r][_sorted_isin(forbidden[r], pool)]) for r in rows]
        drawn = _sample_negatives(sample_seed, users[np.asarray(rows)], local, len(pool), count)
        for r, positions in zip(rows, drawn):
            out[r] = pool[np.asarray(positions, dtype=np.int64)]
    return out


def _sample_negatives(sample_seed, users, forbidden, num_items, count):
    """Per user, ``count`` distinct items drawn uniformly from ``[0, num_items)`` minus ``forbidden``.

    The catalogue is usually far larger than a user's history, so this is rejection
    sampling rather than materialising each user's allowed set (O(num_items) per user):
    a user's j-th draw is ``pair_keys(sample_seed, user, j) % num_items``, and the first
    ``count`` distinct draws outside ``forbidden`` are a uniform sample without
    replacement. Drawing by hash makes a user's negatives independent of which other
    users share the batch. Users whose allowed set is small (at most 2 * count, where
    rejection would waste draws) get an explicit draw from it; fewer than ``count``
    allowed items means all of them.
    """
    out = [None] * len(users)
    rejection = []
    for row, banned in enumerate(forbidden):
        pool = num_items - len(banned)
        if pool <= 2 * count:
            allowed = np.setdiff1d(np.arange(num_items, dtype=np.int64), banned, assume_unique=True)
            if pool > count:
                rng = np.random.default_rng([sample_seed, int(users[row])])
                allowed = rng.choice(allowed, size=count, replace=False)
            out[row] = allowed
        else:
            rejection.append(row)
    # 1.5x the expected number of draws for count accepted ones: enough for nearly every
    # user (repeats matter only when the allowed pool is close to count); the rare
    # shortfall takes the explicit fallback below.
    def draws_needed(row):
        return int(math.ceil(1.5 * count * num_items / (num_items - len(forbidden[row])))) + 32
    rejection.sort(key=draws_needed)
    while rejection:
        width = draws_needed(rejection[-1])
        take = max(1, min(_SAMPLING_CELLS // width, _SAMPLING_CELLS // num_items))
        chunk, rejection = rejection[-take:], rejection[:-take]
        chunk_users = users[np.asarray(chunk)].astype(np.int64)
        draws = (metrics_lib.pair_keys(sample_seed, chunk_users[:, None], np.arange(width)[None, :])
                 % np.uint64(num_items)).astype(np.int64)
        # first[i, item] = position of the first draw of item in row i, or -1 if forbidden:
        # a draw is taken iff it is that first position (distinct and allowed), with no
        # per-row sort or set search.
        first = np.full((len(chunk), num_items), width, dtype=np.int32)
        banned_rows = np.repeat(np.arange(len(chunk)), [len(forbidden[r]) for r in chunk])
        first[banned_rows, np.concatenate([forbidden[r] for r in chunk])] = -1
        row_index = np.broadcast_to(np.arange(len(chunk))[:, None], draws.shape)
        positions = np.broadcast_to(np.arange(width, dtype=np.int32)[None, :], draws.shape)
        np.minimum.at(first, (row_index, draws), positions)
        accepted = first[row_index, draws] == positions
        taken = accepted & (np.cumsum(accepted, axis=1) <= count)
        for i, row in enumerate(chunk):
            picked = draws[i, taken[i]]
            if len(picked) < count:
                allowed = np.setdiff1d(np.arange(num_items, dtype=np.int64), forbidden[row], assume_unique=True)
                picked = np.random.default_rng([sample_seed, int(users[row])]).choice(allowed, size=count,
                                                                                        replace=False)
            out[row] = picked
    return out


def _derived_seed(seed, repeat, purpose):
    # Independent streams per (seed, repeat) for the tie-break and for negative sampling.
    return int(np.random.SeedSequence([seed, repeat, purpose]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_scores(scores, shape, method):
    scores = np.asarray(scores)
    if scores.shape != tuple(shape):
        raise ValueError(f"scorer.{method} returned shape {scores.shape}, expected {tuple(shape)}")
    if not np.issubdtype(scores.dtype, np.number):
        raise ValueError(f"scorer.{method} returned non-numeric dtype {scores.dtype}")
    return scores


def _as_user_items(data, num_items, what) -> Dict[int, np.ndarray]:
    if isinstance(data, Mapping):
        pairs = data.items()
    elif isinstance(data, (list, tuple)):
        pairs = enumerate(data)
    else:
        raise TypeError(f"{what} must be a list indexed by user or a dict user -> items, "
                        f"got {type(data).__name__}")
    out = {}
    for user, items in pairs:
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or user < 0:
            raise ValueError(f"{what}: user {user!r} is not a non-negative int index")
        items = np.asarray(list(items) if not isinstance(items, np.ndarray) else items, dtype=np.int64).ravel()
        if np.any(items[1:] <= items[:-1]):  # already sorted and distinct is the common case
            items = np.unique(items)
        if len(items) and (items[0] < 0 or items[-1] >= num_items):
            bad = items[0] if items[0] < 0 else items[-1]
            raise ValueError(f"{what}: user {user} has item {bad}, outside [0, {num_items})")
        out[int(user)] = items
    return out


def _count_common(sorted_a, sorted_b):
    if not len(sorted_a) or not len(sorted_b):
        return 0
    position = np.minimum(np.searchsorted(sorted_b, sorted_a), len(sorted_b) - 1)
    return int((sorted_b[position] == sorted_a).sum())


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _json_float(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _json_float(value)
    return value
