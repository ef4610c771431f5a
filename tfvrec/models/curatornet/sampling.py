"""CuratorNet's training triplets: visual clusters and the six sampling guidelines.

(One file of ~460 lines on purpose: the six guidelines of §3.5 share one admissibility test, one negative
draw and one deduplicated stream; split apart, each part would only make sense beside the others.)

Cartagena et al., *CuratorNet*, §3.5. A training triplet is ``(P, i, j)``:
a profile P (a set of items standing for a user), an item i the profile should rank
above item j. Notation of the paper's Table 1: a user's purchase baskets
``P_{u,0..N_u-1}`` in time order, ``I_u^+`` all items the user bought, ``I^+_{u,k}``
those bought up to basket k, ``A_u`` / ``VC_u`` the artists / visual clusters of
``I_u^+``, ``a_i`` / ``vc_i`` the artist / visual cluster of item i.

Visual clusters come from `tfvrec.models.curatornet.clusters`, purchase histories
from `tfvrec.models.curatornet.history`.

Guidelines (eqs. 8-13); "a negative j avoids u" means j ∉ I_u^+, a_j ∉ A_u, vc_j ∉ VC_u:

* D1 (eq. 8)  ``(P_{u,k} \\ {i}, i, j)``: hide an item of a basket with ≥ 2 items;
  j avoids u.
* D2 (eq. 9)  ``(I^+_{u,k}, i, j)``, i ∈ P_{u,k+1}: the next basket from everything
  before it; j avoids u.
* D3 (eq. 10) ``(I_u^+, i, j)``, i ∉ I_u^+ with a_i ∈ A_u and vc_i ∈ VC_u; j avoids u.
* D4 (eq. 11) ``(I_u^+, i, j)``, i ∈ I_u^+, j ∉ I_u^+ (the profile includes i).
* D5 (eq. 12) ``({i}, i, j)``, j ≠ i, over the whole catalogue.
* D6 (eq. 13) ``({i'}, i, j)``, a_i = a_i', i ≠ i', a_j ≠ a_i'.

Each triplet draws its guideline uniformly among the active ones ("distributed
uniformly among the six training sets"), then a uniform member of that guideline's
(profile, positive) set and a uniform admissible negative. Triplets are hashed
(an order-free hash of the profile, then i and j) and a triplet whose hash was
already emitted is dropped, so D_S is a set. The ablation ``sampling="random"``
is §5.1's "traditional BPR setting": ``(I_u^+ \\ {i}, i, j)`` with j uniform over
I \\ I_u^+.

Streaming: triplets are drawn, hashed and deduplicated a chunk at a time (chunk c
from its own generator, seeded by (seed, c), so chunks can also be drawn in parallel:
`tfvrec.triplets`) and emitted as training batches; a triplet is never stored. What stays in memory is
the data set's index (linear in its size) and one 8-byte hash per emitted
triplet (80 MB for the paper's 10 million). A profile is three integers (a range
of the chronological purchase array and one position to skip), so its hash
comes from prefix sums, without building it; it is materialised only for the
batch that trains on it.

A guideline whose data the data set lacks is skipped with a logged reason: no
baskets (neither a basket nor a timestamp column) → D1, D2; no artists → D3, D6
(and negatives no longer avoid artists); no visual clusters (no image features)
→ negatives and D3 ignore clusters. Users with no admissible negative at all
(they bought from every artist or cluster) sit out D1-D3, also logged.
"""
import dataclasses
from typing import Dict, Iterator, List, Optional

import numpy as np
from absl import logging

from tfvrec import progress
from tfvrec.hashing import HashSet, mix64
from tfvrec.models.curatornet.config import GUIDELINES
from tfvrec.models.curatornet.history import PurchaseHistory

# Guidelines whose negatives must avoid the user's artists and visual clusters.
_AVOIDING = ("D1", "D2", "D3")
_NO_SKIP = -1
_BLOCK_USERS = 512  # users per block when building per-user item masks
_REJECTION_ROUNDS = 32
# The stream ends after this many chunks in a row each adding fewer than 1% new triplets.
STARVED_CHUNKS = 20


# ----------------------------------------------------------------------------- triplets

@dataclasses.dataclass
class Triplets:
    """A chunk of triplets. The profile is ``source[start:end]`` without position ``skip``.

    ``source`` is the sampler's purchase array followed by ``arange(num_items)``, so an
    artificial one-item profile {i} is the range of length 1 at ``num_purchases + i``.
    ``user`` is -1 for the artificial profiles of D5 and D6.
    """

    start: np.ndarray
    end: np.ndarray
    skip: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    user: np.ndarray
    guideline: np.ndarray  # int8: index into TripletSampler.names

    def __len__(self):
        return len(self.positive)

    def take(self, rows):
        return Triplets(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts):
        return Triplets(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                           for f in dataclasses.fields(Triplets)})


class TripletSampler:
    """Draws deduplicated CuratorNet triplets from a purchase history, a chunk at a time.

    ``item_artist``: int [num_items], -1 for none (all -1: no artists).
    ``item_cluster``: int [num_items] visual cluster, or None without image features.
    ``sampling``: "guidelines" (the active ones of ``guidelines``) or "random".
    ``max_profile_items``: profiles keep their most recent items up to this (0 = all).
    """

    def __init__(self, history: PurchaseHistory, item_artist, item_cluster=None, guidelines=GUIDELINES,
                 sampling="guidelines", max_profile_items=0):
        if sampling not in ("guidelines", "random"):
            raise ValueError(f"sampling must be 'guidelines' or 'random', got {sampling!r}")
        unknown = [g for g in guidelines if g not in GUIDELINES]
        if unknown or not guidelines:
            raise ValueError(f"unknown guideline(s) {unknown or list(guidelines)}; choose from {list(GUIDELINES)}")
        self.history = h = history
        self.num_items = h.num_items
        self.cap = int(max_profile_items)
        artist = np.asarray(item_artist, dtype=np.int64)
        self.has_artists = bool((artist >= 0).any())
        self.num_artists = int(artist.max()) + 1 if self.has_artists else 0
        self.artist = np.where(artist >= 0, artist, self.num_artists)  # -1 → an extra "no artist" column
        self.has_clusters = item_cluster is not None
        cluster = np.asarray(item_cluster, dtype=np.int64) if self.has_clusters else np.zeros(h.num_items, np.int64)
        self.num_clusters = int(cluster.max()) + 1
        self.cluster = cluster
        self.skipped: Dict[str, str] = {}
        self.notes: List[str] = []

        # The profile source: purchases, then every item once (artificial profiles).
        self.offset = len(h.items)
        self.source = np.concatenate([h.items, np.arange(h.num_items, dtype=np.int64)])
        self.prefix = np.r_[np.uint64(0), np.cumsum(mix64(self.source), dtype=np.uint64)]
        self.purchase_user = h.purchase_user()
        counts = np.diff(h.user_start)
        self.item_keys = np.unique(self.purchase_user * h.num_items + h.items)
        # A_u: the artists of the user's purchases; an item without an artist adds none, so
        # items without an artist never share one with the user (the per-user scan's rule too).
        with_artist = self.artist[h.items] < self.num_artists
        self.artist_keys = np.unique(self.purchase_user[with_artist] * (self.num_artists + 1)
                                     + self.artist[h.items][with_artist])
        self.cluster_keys = np.unique(self.purchase_user * self.num_clusters + self.cluster[h.items])
        if not self.has_artists:
            self.notes.append("no artists: negatives do not avoid the user's artists")
        if not self.has_clusters:
            self.notes.append("no visual clusters (no image features): negatives and D3 ignore clusters")
        self._fallback_cache: Dict[tuple, np.ndarray] = {}

        allowed_counts, d3_splits, d3_items = self._scan_users()
        avoidable = allowed_counts > 0
        self.d3_splits, self.d3_items = d3_splits, d3_items

        if sampling == "random":
            self.names = ["random"]
            eligible = counts[self.purchase_user] >= 2
            self.units = {"random": np.flatnonzero(eligible)}
            if (counts == 1).any():
                self.notes.append(f"random: {int((counts == 1).sum())} users with one purchase have no P_u \\ {{i}}")
            if not len(self.units["random"]):
                raise ValueError("random sampling needs a user with ≥ 2 training purchases")
        else:
            self.units = {}
            basket_size = np.diff(h.basket_start)
            first_basket = np.r_[True, h.basket_user[1:] != h.basket_user[:-1]]
            for name in GUIDELINES:
                if name not in guidelines:
                    continue
                reason = None
                if name in ("D1", "D2") and not h.has_baskets:
                    reason = "the data set has no baskets (no basket or timestamp column)"
                elif name in ("D3", "D6") and not self.has_artists:
                    reason = "the data set has no artists"
                elif name == "D1":
                    units = np.flatnonzero((basket_size[h.purchase_basket] >= 2) & avoidable[self.purchase_user])
                    reason = None if len(units) else "no basket with ≥ 2 items (of a user with admissible negatives)"
                elif name == "D2":
                    units = np.flatnonzero(~first_basket[h.purchase_basket] & avoidable[self.purchase_user])
                    reason = None if len(units) else "no user with ≥ 2 baskets (and admissible negatives)"
                elif name == "D3":
                    units = np.arange(len(d3_items))
                    reason = None if len(units) else "no unpurchased item shares an artist and cluster with a user"
                elif name == "D4":
                    units = np.arange(len(h.items))
                    reason = None if len(units) else "no purchases"
                elif name == "D5":
                    units = np.arange(h.num_items)
                elif name == "D6":
                    per_artist = np.bincount(self.artist, minlength=self.num_artists + 1)
                    units = np.flatnonzero((artist >= 0) & (per_artist[self.artist] >= 2))
                    if per_artist[:self.num_artists].max(initial=0) == h.num_items:
                        units = units[:0]
                    reason = None if len(units) else "no artist with ≥ 2 items"
                if reason:
                    self.skipped[name] = reason
                else:
                    self.units[name] = units
            self.names = [g for g in GUIDELINES if g in self.units]
            if not self.names:
                raise ValueError(f"no sampling guideline applies to this data set: {self.skipped}")
            unavoidable = int((~avoidable & (counts > 0)).sum())
            if unavoidable and any(g in self.names for g in _AVOIDING):
                self.notes.append(f"{unavoidable} users have no item outside their artists and visual clusters: "
                                  "they sit out D1-D3")
        for name, reason in self.skipped.items():
            logging.warning("CuratorNet sampling: guideline %s skipped: %s", name, reason)
        for note in self.notes:
            logging.info("CuratorNet sampling: %s", note)
        logging.info("CuratorNet sampling: %s over %s; baskets from %s", sampling, self.names, h.basket_source)

    # -- per-user scans ------------------------------------------------------------------
    def _user_masks(self, users):
        """Dense [len(users), A+1] artist and [len(users), C] cluster membership of a block of users."""
        h = self.history
        artists = np.zeros((len(users), self.num_artists + 1), dtype=bool)
        clusters = np.zeros((len(users), self.num_clusters), dtype=bool)
        lo, hi = h.user_start[users[0]], h.user_start[users[-1] + 1]
        rows = self.purchase_user[lo:hi] - users[0]
        artists[rows, self.artist[h.items[lo:hi]]] = True
        artists[:, self.num_artists] = False  # "no artist" is never one of the user's artists
        clusters[rows, self.cluster[h.items[lo:hi]]] = True
        return artists, clusters, rows, h.items[lo:hi]

    def _scan_users(self):
        """Per user: number of admissible D1-D3 negatives; D3 positives (CSR)."""
        h = self.history
        counts = np.zeros(h.num_users, dtype=np.int64)
        d3_lengths, d3_parts = np.zeros(h.num_users, dtype=np.int64), []
        for begin in progress.bar(range(0, h.num_users, _BLOCK_USERS), desc="sampler set-up", unit="block"):
            users = np.arange(begin, min(begin + _BLOCK_USERS, h.num_users))
            artists, clusters, rows, bought = self._user_masks(users)
            by_artist = artists[:, self.artist]
            in_cluster = clusters[:, self.cluster] if self.has_clusters else None
            allowed = ~by_artist if in_cluster is None else ~by_artist & ~in_cluster
            allowed[rows, bought] = False
            counts[users] = allowed.sum(axis=1)
            if self.has_artists:
                candidate = by_artist if in_cluster is None else by_artist & in_cluster
                candidate[rows, bought] = False
                candidate &= (counts[users] > 0)[:, None]
                r, c = np.nonzero(candidate)
                d3_lengths[users] = np.bincount(r, minlength=len(users))
                d3_parts.append(c.astype(np.int64))
        d3_splits = np.r_[0, np.cumsum(d3_lengths)].astype(np.int64)
        d3_items = np.concatenate(d3_parts) if d3_parts else np.empty(0, np.int64)
        return counts, d3_splits, d3_items

    # -- admissible negatives ------------------------------------------------------------
    def _owned(self, users, items):
        keys = users * self.num_items + items
        at = np.minimum(np.searchsorted(self.item_keys, keys), len(self.item_keys) - 1)
        return self.item_keys[at] == keys

    def _in_keys(self, keys, query):
        at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return keys[at] == query

    def _admissible(self, kind, users, anchors, items):
        if kind == "avoid":  # j ∉ I_u^+, a_j ∉ A_u, vc_j ∉ VC_u
            ok = ~self._owned(users, items)
            if self.has_artists:
                ok &= ~self._in_keys(self.artist_keys, users * (self.num_artists + 1) + self.artist[items])
            if self.has_clusters:
                ok &= ~self._in_keys(self.cluster_keys, users * self.num_clusters + self.cluster[items])
            return ok
        if kind == "unowned":  # j ∉ I_u^+
            return ~self._owned(users, items)
        if kind == "other_item":  # j ≠ i
            return items != anchors
        if kind == "other_artist":  # a_j ≠ a_i'
            return self.artist[items] != self.artist[anchors]
        raise ValueError(kind)

    def _allowed_items(self, kind, user, anchor):
        """Every admissible negative for one (user, anchor): the fallback when rejection fails."""
        key = (kind, int(user), int(anchor))
        if key not in self._fallback_cache:
            if len(self._fallback_cache) > 4096:
                self._fallback_cache.clear()
            items = np.arange(self.num_items)
            ok = self._admissible(kind, np.full(self.num_items, user), np.full(self.num_items, anchor), items)
            self._fallback_cache[key] = items[ok]
        return self._fallback_cache[key]

    def _negatives(self, rng, kind, users, anchors):
        """One uniform admissible negative per row (rejection, then an explicit draw)."""
        n = len(users)
        out = rng.integers(0, self.num_items, n)
        bad = np.flatnonzero(~self._admissible(kind, users, anchors, out))
        for _ in range(_REJECTION_ROUNDS):
            if not len(bad):
                return out
            out[bad] = rng.integers(0, self.num_items, len(bad))
            bad = bad[~self._admissible(kind, users[bad], anchors[bad], out[bad])]
        for row in bad:
            allowed = self._allowed_items(kind, users[row], anchors[row])
            out[row] = allowed[rng.integers(len(allowed))] if len(allowed) else -1
        return out

    # -- the guidelines --------------------------------------------------------------------
    def _draw(self, name, rng, n):
        """``n`` (profile, positive, negative) of one guideline, as Triplets."""
        h = self.history
        units = self.units[name]
        pick = units[rng.integers(0, len(units), n)]
        none = np.full(n, _NO_SKIP, dtype=np.int64)
        if name in ("D1", "D2", "D4", "random"):
            user = self.purchase_user[pick]
            positive = h.items[pick]
            if name == "D1":  # the rest of the basket
                basket = h.purchase_basket[pick]
                start, end, skip = h.basket_start[basket], h.basket_start[basket + 1], pick
            elif name == "D2":  # everything before the positive's basket
                start, end, skip = h.user_start[user], h.basket_start[h.purchase_basket[pick]], none
            elif name == "D4":  # the full history, positive included
                start, end, skip = h.user_start[user], h.user_start[user + 1], none
            else:  # random: the full history without the positive
                start, end, skip = h.user_start[user], h.user_start[user + 1], pick
            kind = "avoid" if name in _AVOIDING else "unowned"
            negative = self._negatives(rng, kind, user, positive)
        elif name == "D3":
            user = np.searchsorted(self.d3_splits, pick, side="right") - 1
            positive = self.d3_items[pick]
            start, end, skip = h.user_start[user], h.user_start[user + 1], none
            negative = self._negatives(rng, "avoid", user, positive)
        elif name == "D5":
            user, positive = np.full(n, -1), pick
            start, end, skip = self.offset + pick, self.offset + pick + 1, none
            negative = self._negatives(rng, "other_item", user, pick)
        elif name == "D6":
            user = np.full(n, -1)
            anchor = pick  # i'
            positive = self._same_artist(rng, anchor)
            start, end, skip = self.offset + anchor, self.offset + anchor + 1, none
            negative = self._negatives(rng, "other_artist", user, anchor)
        else:
            raise ValueError(name)
        if self.cap:  # keep the most recent `cap` profile items (one more if the skipped one is inside)
            inside = (skip >= end - self.cap) & (skip < end)
            start = np.maximum(start, end - self.cap - inside)
        index = self.names.index(name)
        triplets = Triplets(start=start.astype(np.int64), end=end.astype(np.int64), skip=skip.astype(np.int64),
                            positive=positive.astype(np.int64), negative=negative.astype(np.int64),
                            user=user.astype(np.int64), guideline=np.full(n, index, dtype=np.int8))
        return triplets.take(np.flatnonzero(triplets.negative >= 0))

    def _same_artist(self, rng, anchors):
        """A uniform item ≠ i' by the artist of i' (D6's positive)."""
        if not hasattr(self, "_by_artist"):
            order = np.argsort(self.artist, kind="stable")
            self._by_artist = (order, np.searchsorted(self.artist[order], np.arange(self.num_artists + 2)))
        order, bounds = self._by_artist
        a = self.artist[anchors]
        size = bounds[a + 1] - bounds[a]
        draw = rng.integers(0, size - 1)  # among the size - 1 others
        chosen = order[bounds[a] + draw]
        # Drawing i' itself takes the artist's last slot instead, which `draw` never
        # reaches: uniform over the other size - 1 items.
        clash = chosen == anchors
        chosen[clash] = order[bounds[a[clash]] + size[clash] - 1]
        return chosen

    def sample(self, rng, n):
        """``n`` triplets (before deduplication), guidelines uniform, rows shuffled."""
        counts = rng.multinomial(n, np.full(len(self.names), 1.0 / len(self.names)))
        parts = [self._draw(name, rng, int(c)) for name, c in zip(self.names, counts) if c]
        triplets = Triplets.concat(parts)
        return triplets.take(rng.permutation(len(triplets)))

    # -- hashing and streaming ---------------------------------------------------------------
    def hashes(self, t: Triplets):
        """An order-free hash of the profile (a sum of mixed items), then i and j."""
        inside = (t.skip >= t.start) & (t.skip < t.end)
        total = self.prefix[t.end] - self.prefix[t.start]
        skipped = mix64(self.source[np.where(inside, t.skip, 0)])
        total = total - np.where(inside, skipped, np.uint64(0))
        length = (t.end - t.start - inside).astype(np.uint64)
        h = mix64(total ^ mix64(length + np.uint64(0x9E3779B97F4A7C15)))
        h = mix64(h + t.positive.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        return mix64(h ^ (t.negative.astype(np.uint64) * np.uint64(0xAEF17502108EF2D9)))

    def profile_lengths(self, t: Triplets):
        return t.end - t.start - ((t.skip >= t.start) & (t.skip < t.end))

    def chunk(self, seed, index, size=16384):
        """Chunk ``index`` of the stream: ``(triplets, hashes, first)``, where ``first`` are the
        positions (ascending) of each hash's first occurrence within the chunk.

        A pure function of ``(seed, index, size)``: each chunk draws from its own generator,
        so chunks can be drawn in any order or in parallel (`tfvrec.triplets.beam_pipeline`)
        and give the same triplets as the sequential stream.
        """
        triplets = self.sample(np.random.default_rng([seed, 0x7C2A, index]), size)
        h = self.hashes(triplets)
        _, first = np.unique(h, return_index=True)
        return triplets, h, np.sort(first)

    def stream(self, seed, num_triplets, chunk=16384, seen: Optional[HashSet] = None) -> Iterator[Triplets]:
        """Yield chunks of distinct triplets until ``num_triplets`` (one pass over D_S).

        D_S is the first ``num_triplets`` distinct triplets in (chunk, position) order: a
        triplet is kept at its first occurrence, chunk ``c`` being `chunk` (seed, c). The
        same seed gives the same triplets in the same order. If the guidelines run out of
        new triplets (a small data set), the pass ends early with a warning: after
        `STARVED_CHUNKS` chunks in a row adding fewer than ``chunk // 100`` new triplets each.
        """
        seen = HashSet() if seen is None else seen
        emitted, starved, index = 0, 0, 0
        while emitted < num_triplets:
            triplets, h, first = self.chunk(seed, index, chunk)
            index += 1
            fresh = first[~seen.contains(h[first])]
            fresh = fresh[:num_triplets - emitted]
            seen.add(h[fresh])
            emitted += len(fresh)
            starved = starved + 1 if len(fresh) < chunk // 100 else 0
            if len(fresh):
                yield triplets.take(fresh)
            if starved >= STARVED_CHUNKS:
                logging.warning("CuratorNet sampling: the guidelines yield no new triplets; this pass holds "
                                "%d distinct triplets instead of %d", emitted, num_triplets)
                return

    def materialize(self, t: Triplets):
        """The batch as arrays: profile int64 [n, L] left-aligned and padded with -1, positive, negative, user."""
        lengths = self.profile_lengths(t)
        width = int(max(lengths.max(initial=1), 1))
        column = np.arange(width)[None, :]
        inside = ((t.skip >= t.start) & (t.skip < t.end))[:, None]
        # Positions at or after the skipped one move one further: no hole in the row.
        positions = t.start[:, None] + column + (inside & (t.start[:, None] + column >= t.skip[:, None]))
        valid = column < lengths[:, None]
        profile = np.where(valid, self.source[np.minimum(positions, len(self.source) - 1)], -1)
        return {"profile": profile, "positive": t.positive, "negative": t.negative, "user": t.user}

    def batches(self, seed, num_triplets, batch_size, chunk=16384) -> Iterator[dict]:
        """Infinite training batches: passes over the same D_S (same seed), each regenerated."""
        pending: List[Triplets] = []
        held = 0
        while True:
            produced = 0
            for triplets in self.stream(seed, num_triplets, chunk=chunk):
                produced += len(triplets)
                pending.append(triplets)
                held += len(triplets)
                if held < batch_size:
                    continue
                merged = Triplets.concat(pending)
                cut = (held // batch_size) * batch_size
                for begin in range(0, cut, batch_size):
                    yield self.materialize(merged.take(slice(begin, begin + batch_size)))
                pending, held = [merged.take(slice(cut, None))], held - cut
            if not produced:
                raise ValueError("the triplet sampler produced no triplet")


def describe(sampler: TripletSampler):
    """One line for logs and benchmark notes: the guidelines used, skipped and why."""
    parts = [f"guidelines {'/'.join(sampler.names)}"]
    parts += [f"{name} skipped ({reason})" for name, reason in sampler.skipped.items()]
    return "; ".join(parts + sampler.notes)
