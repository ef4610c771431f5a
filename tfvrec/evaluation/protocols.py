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
from tfvrec.evaluation.candidates import (MAX_CANDIDATE_POSITIVES, NO_ITEMS, as_pools, as_user_items, count_common,
                                          full_batch, restrict_to_pools, sampled_batch)
from tfvrec.evaluation.results import RANK_ALL, EvalResult

__all__ = ["EvalResult", "ProtocolSpec", "Scorer", "FullScorer", "parse_protocol", "evaluate", "items_by_user",
           "MAX_CANDIDATE_POSITIVES", "RANK_ALL", "NEW_ITEMS"]


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



# -- evaluation -------------------------------------------------------------------------------

UserItems = Union[Mapping[int, Iterable[int]], Sequence[Iterable[int]]]


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
    heldout_map = as_user_items(heldout, num_items, "heldout")
    exclude_map = {} if exclude is None else as_user_items(exclude, num_items, "exclude")
    if spec.kind == NEW_ITEMS and candidate_pool is None:
        raise ValueError("the new_items protocol ranks among the items without a training interaction: pass them "
                         "as candidate_pool (tfvrec.evaluation.evaluator.candidate_pool computes it from the data set)")
    if spec.kind == INTEREST_CANDIDATES and candidate_pool is None:
        raise ValueError("the interest_candidates protocol draws each user's candidates from the items sharing an "
                         "interest tag with them: pass them as candidate_pool (tfvrec.evaluation.evaluator."
                         "candidate_pool computes it from the data set)")
    pools = as_pools(candidate_pool, num_items)
    with_heldout = sorted(u for u, items in heldout_map.items() if len(items))
    info = {"num_items": num_items, "ks": ks, "seed": seed,
            "users_skipped_no_heldout": len(heldout_map) - len(with_heldout)}
    if pools is not None:
        heldout_map, outside = restrict_to_pools(heldout_map, with_heldout, pools)
        with_heldout = [u for u in with_heldout if len(heldout_map[u])]
        info["candidate_pool_size"] = (len(pools.shared) if pools.shared is not None else
                                       float(np.mean([len(pools.get(u)) for u in with_heldout] or [0])))
        info["heldout_outside_pool"] = outside
        info["users_skipped_outside_pool"] = len(heldout_map) - info["users_skipped_no_heldout"] - len(with_heldout)
    users = np.array(with_heldout, dtype=np.int64)
    overlap = sum(count_common(heldout_map[u], exclude_map.get(u, NO_ITEMS)) for u in users)
    info["heldout_also_excluded"] = int(overlap)
    if batch_size is None:
        width = num_items if spec.kind in RANK_ALL else spec.num_negatives + max(
            (len(heldout_map[u]) for u in users), default=1)
        batch_size = max(1, min(2048, (1 << 21) // max(width, 1)))
    batch_size = _positive_int(batch_size, "batch_size")

    run_count = 1 if spec.kind in RANK_ALL else repeats
    if spec.kind not in RANK_ALL:
        # Never a negative: the user's excluded items and the held-out items themselves.
        forbidden_map = {int(u): np.union1d(heldout_map[u], exclude_map.get(u, NO_ITEMS)) for u in users}
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
                scores, relevant, valid, items = full_batch(scorer, batch_users, heldout_map, exclude_map, num_items,
                                                             pools)
            else:
                scores, relevant, valid, items, short = sampled_batch(
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




















def _derived_seed(seed, repeat, purpose):
    # Independent streams per (seed, repeat) for the tie-break and for negative sampling.
    return int(np.random.SeedSequence([seed, repeat, purpose]).generate_state(1, np.uint64)[0] >> np.uint64(1))








def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)




