"""CuratorNet's triplet sampling (§3.5): guidelines D1-D6 against hand-worked sets, dedup, streaming, clusters."""
import logging
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from tfvrec.hashing import HashSet
from tfvrec.models.curatornet.clusters import visual_clusters
from tfvrec.models.curatornet.history import PurchaseHistory
from tfvrec.models.curatornet.sampling import TripletSampler

# Ten items: artist and visual cluster of each (-1: no artist).
ARTIST = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, -1])
CLUSTER = np.array([0, 1, 0, 1, 2, 2, 3, 3, 0, 1])
# u0 buys {0, 2} then {4}; u1 buys {6} then {7, 1}; u2 buys {8}.
PURCHASES = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1, 2], "item": [0, 2, 4, 6, 7, 1, 8],
                          "timestamp": [1, 1, 2, 1, 2, 2, 5],
                          "basket": ["a", "a", "b", "c", "d", "d", "e"]})


def tiny_history(frame=PURCHASES):
    return PurchaseHistory.from_frame(frame, num_users=3, num_items=10)


def all_triplets(sampler, seed=0, chunk=512):
    """Every distinct triplet the sampler emits, as (guideline, profile multiset, i, j)."""
    out = []
    for triplets in sampler.stream(seed, num_triplets=100_000, chunk=chunk):
        batch = sampler.materialize(triplets)
        for g, row, i, j in zip(triplets.guideline, batch["profile"], batch["positive"], batch["negative"]):
            out.append((sampler.names[g], tuple(sorted(int(x) for x in row if x >= 0)), int(i), int(j)))
    return out


def reference_triplets():
    """The paper's eqs. 8-13 enumerated literally, by brute force, on the tiny data set."""
    items = range(10)
    users = {0: [[0, 2], [4]], 1: [[6], [7, 1]], 2: [[8]]}
    sets = {g: set() for g in ("D1", "D2", "D3", "D4", "D5", "D6")}
    for u, baskets in users.items():
        bought = {i for b in baskets for i in b}
        artists, clusters = {ARTIST[i] for i in bought}, {CLUSTER[i] for i in bought}
        avoid = [j for j in items if j not in bought and ARTIST[j] not in artists and CLUSTER[j] not in clusters]
        for basket in baskets:  # eq. 8
            if len(basket) >= 2:
                for i in basket:
                    rest = tuple(sorted(x for x in basket if x != i))
                    sets["D1"] |= {(rest, i, j) for j in avoid}
        for k in range(len(baskets) - 1):  # eq. 9
            before = tuple(sorted(x for b in baskets[:k + 1] for x in b))
            sets["D2"] |= {(before, i, j) for i in baskets[k + 1] for j in avoid}
        profile = tuple(sorted(bought))
        for i in items:  # eq. 10
            if i not in bought and ARTIST[i] in artists and CLUSTER[i] in clusters:
                sets["D3"] |= {(profile, i, j) for j in avoid}
        sets["D4"] |= {(profile, i, j) for i in bought for j in items if j not in bought}  # eq. 11
    sets["D5"] = {((i,), i, j) for i in items for j in items if j != i}  # eq. 12
    sets["D6"] = {((a,), i, j) for a in items for i in items for j in items  # eq. 13
                  if ARTIST[a] >= 0 and i != a and ARTIST[i] == ARTIST[a] and j != a and ARTIST[j] != ARTIST[a]}
    return sets


def test_guidelines_produce_exactly_the_papers_triplet_sets():
    reference = reference_triplets()
    # Hand-worked sizes: u0 may only take negatives {6, 7, 9}, u1 {2, 4, 5, 8}, u2 none needed.
    assert {g: len(s) for g, s in reference.items()} == {"D1": 14, "D2": 11, "D3": 3, "D4": 51, "D5": 90, "D6": 64}
    assert reference["D3"] == {((0, 2, 4), 5, j) for j in (6, 7, 9)}
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER)
    assert sampler.names == ["D1", "D2", "D3", "D4", "D5", "D6"] and not sampler.skipped
    emitted = all_triplets(sampler)
    keys = [t[1:] for t in emitted]
    assert len(keys) == len(set(keys)), "a triplet was emitted twice"
    union = set().union(*reference.values())
    # D_S is the union of the six sets (eq. 14): 233 memberships, 220 distinct triplets
    # (u2's D4 triplets are D5's, and ({6}, 7, j) is in both D2 and D6).
    assert len(union) == 220 and set(keys) == union
    for guideline, *triplet in emitted:
        assert tuple(triplet) in reference[guideline], (guideline, triplet)


def test_guidelines_are_drawn_uniformly_and_the_stream_is_reproducible():
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER)
    counts = np.bincount(sampler.sample(np.random.default_rng(1), 60_000).guideline, minlength=6)
    np.testing.assert_allclose(counts / 60_000, 1 / 6, atol=0.01)
    first = [t.positive for t in sampler.stream(3, 150, chunk=64)]
    again = [t.positive for t in sampler.stream(3, 150, chunk=64)]
    other = [t.positive for t in sampler.stream(4, 150, chunk=64)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))


def test_the_stream_ends_when_the_guidelines_run_dry(caplog):
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER)
    with caplog.at_level(logging.WARNING):
        total = sum(len(t) for t in sampler.stream(0, 100_000, chunk=256))
    assert total == 220
    assert "this pass holds 220 distinct triplets instead of 100000" in caplog.text


def test_random_negative_ablation():
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER, sampling="random")
    bought = {0: {0, 2, 4}, 1: {1, 6, 7}}
    triplets = sampler.sample(np.random.default_rng(0), 2000)
    batch = sampler.materialize(triplets)
    assert set(batch["user"]) == {0, 1}  # u2 has one purchase: no P_u \ {i}
    for u, row, i, j in zip(batch["user"], batch["profile"], batch["positive"], batch["negative"]):
        profile = sorted(x for x in row if x >= 0)
        assert i in bought[u] and profile == sorted(bought[u] - {i})  # (I_u^+ \ {i}, i, j)
        assert j not in bought[u]
    # Negatives are uniform over the unbought items, not restricted by artist or cluster.
    assert set(batch["negative"][batch["user"] == 0]) == set(range(10)) - bought[0]


def test_guidelines_missing_data_are_skipped_with_a_reason(caplog):
    no_baskets = PURCHASES.drop(columns=["basket", "timestamp"])
    with caplog.at_level(logging.WARNING):
        sampler = TripletSampler(tiny_history(no_baskets), np.full(10, -1), None)
    assert sampler.names == ["D4", "D5"]
    assert sampler.skipped == {"D1": "the data set has no baskets (no basket or timestamp column)",
                               "D2": "the data set has no baskets (no basket or timestamp column)",
                               "D3": "the data set has no artists", "D6": "the data set has no artists"}
    assert "guideline D1 skipped: the data set has no baskets" in caplog.text
    assert "guideline D6 skipped: the data set has no artists" in caplog.text
    # A timestamp alone still makes baskets (one per user and instant).
    by_time = TripletSampler(tiny_history(PURCHASES.drop(columns=["basket"])), ARTIST, None)
    assert by_time.names == ["D1", "D2", "D3", "D4", "D5", "D6"]
    assert any("no visual clusters" in note for note in by_time.notes)


def test_without_clusters_negatives_avoid_artists_only():
    sampler = TripletSampler(tiny_history(), ARTIST, None, guidelines=["D1"])
    negatives = {int(j) for t in sampler.stream(0, 10_000, chunk=256) for j in t.negative[t.user == 0]}
    # u0's artists are {0, 1, 2}: every other item outside its purchases is admissible.
    assert negatives == {6, 7, 8, 9}


def test_profile_cap_keeps_the_most_recent_items():
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER, guidelines=["D4"], max_profile_items=1)
    batch = sampler.materialize(sampler.sample(np.random.default_rng(0), 500))
    assert batch["profile"].shape[1] == 1
    latest = {0: 4, 1: 1, 2: 8}  # u1's last basket {7, 1} is stored in file order: 1 comes last
    for u, row in zip(batch["user"], batch["profile"]):
        assert row[0] == latest[u]


def test_streaming_keeps_hashes_not_triplets():
    """200k triplets with profiles of up to 100 items stream in a few MB (their profiles alone take 50+ MB)."""
    rng = np.random.default_rng(0)
    users, items = 2000, 3000
    counts = rng.integers(2, 120, users)
    frame = pd.DataFrame({"user": np.repeat(np.arange(users), counts), "item": rng.integers(0, items, counts.sum()),
                          "timestamp": rng.integers(0, 50, counts.sum())})
    frame = frame.drop_duplicates(["user", "item"])
    history = PurchaseHistory.from_frame(frame, users, items)
    sampler = TripletSampler(history, rng.integers(0, 300, items), rng.integers(0, 100, items),
                             max_profile_items=100)
    seen = HashSet()
    tracemalloc.start()
    emitted, profile_items = 0, 0
    for triplets in sampler.stream(0, 200_000, chunk=8192, seen=seen):
        emitted += len(triplets)
        profile_items += int(sampler.profile_lengths(triplets).sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert emitted == len(seen) == 200_000
    assert seen.nbytes == 8 * 200_000
    assert profile_items * 8 > 50e6  # what holding the triplets' profiles would take
    assert peak < 20e6, f"streaming peaked at {peak / 1e6:.1f} MB"


def test_hash_set_membership():
    rng = np.random.default_rng(0)
    seen, reference = HashSet(), set()
    for _ in range(50):
        chunk = np.unique(rng.integers(0, 5000, 300).astype(np.uint64))
        fresh = chunk[~seen.contains(chunk)]
        assert set(fresh.tolist()) == set(chunk.tolist()) - reference
        seen.add(fresh)
        reference |= set(fresh.tolist())
    assert len(seen) == len(reference) and len(seen.runs) < 12


def test_visual_clusters_pick_the_best_silhouette_run():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(4, 50))
    truth = np.repeat(np.arange(4), 30)
    vectors = centres[truth] + rng.normal(size=(120, 50))
    labels, info = visual_clusters(vectors, dims=10, num_clusters=4, restarts=5, seed=0)
    assert info["pca_dims"] == 10 and len(info["silhouettes"]) == 5
    assert info["silhouette"] == max(info["silhouettes"])
    # Each planted group is one cluster.
    assert all(len(set(labels[truth == t])) == 1 for t in range(4)) and len(set(labels)) == 4


def test_materialized_profiles_are_left_aligned_without_the_hidden_item():
    sampler = TripletSampler(tiny_history(), ARTIST, CLUSTER, guidelines=["D1"])
    batch = sampler.materialize(sampler.sample(np.random.default_rng(0), 200))
    valid = batch["profile"] >= 0
    # Every row: its valid entries first, then only padding (a ragged row, no holes).
    assert np.array_equal(valid, np.arange(valid.shape[1])[None, :] < valid.sum(axis=1)[:, None])
    for row, i in zip(batch["profile"], batch["positive"]):
        assert i not in row


@pytest.mark.parametrize("bad", [dict(sampling="hard"), dict(guidelines=["D7"]), dict(guidelines=[])])
def test_bad_sampler_settings_fail_clearly(bad):
    with pytest.raises(ValueError, match="sampling must be|unknown guideline"):
        TripletSampler(tiny_history(), ARTIST, CLUSTER, **bad)



def test_negatives_follow_the_scan_rule_for_items_without_an_artist():
    """a_j ∉ A_u: an item without an artist shares none with the user, even a user who bought one."""
    frame = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 4], "timestamp": [1, 2, 1]})
    history = PurchaseHistory.from_frame(frame, num_users=2, num_items=5)
    # items 0, 2, 3 have no artist; item 1 is by artist 0, item 4 by artist 1
    sampler = TripletSampler(history, item_artist=np.array([-1, 0, -1, -1, 1]), guidelines=["D1", "D2", "D3"])
    counts, _, _ = sampler._scan_users()
    assert counts[0] == 3  # user 0: items 2, 3 (no artist) and 4 (another artist) avoid them
    drawn = sampler._negatives(np.random.default_rng(0), "avoid", np.zeros(300, np.int64), np.zeros(300, np.int64))
    assert set(drawn) == {2, 3, 4}
