"""The synthetic world: format, determinism, and that every planted signal is really there."""
import dataclasses
import filecmp
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec import config as config_lib
from tfvrec.data import resolve
from tfvrec.data.dataset import load_dataset
from tfvrec.data.synthetic import (DRIVERS, SyntheticWorldConfig, generate_world, key_fields, load_truth,
                                   pixel_features, recorded_fields, write_world)
from tfvrec.errors import ConfigError

# Small enough to stay fast, big enough (16 topics, 1000 items, ~40 upload-driven
# creators) that the planted signals are not drowned by sampling noise.
SMALL = dict(num_users=250, num_items=1000, num_topics=16, num_creators=80, num_artists=24,
             mean_likes_per_user=15.0, mean_follows_per_user=6.0, num_groups=16)


@pytest.fixture(scope="module")
def config():
    return SyntheticWorldConfig(**SMALL)


@pytest.fixture(scope="module")
def world_path(tmp_path_factory, config):
    return write_world(str(tmp_path_factory.mktemp("synthetic") / "world"), config)


@pytest.fixture(scope="module")
def dataset(world_path):
    return load_dataset(world_path)


@pytest.fixture(scope="module")
def truth(world_path, dataset):
    truth = load_truth(world_path)
    # Everything below indexes truth arrays with the loader's indices.
    np.testing.assert_array_equal(truth["user_ids"], dataset.user_ids)
    np.testing.assert_array_equal(truth["item_ids"], dataset.item_ids)
    return truth


def _all_likes(dataset):
    return pd.concat([dataset.split(s) for s in ("train", "validation", "test")], ignore_index=True)


def _followees(dataset):
    social = dataset.social
    order = np.argsort(social["user"].values, kind="stable")
    users, followed = social["user"].values[order], social["followed"].values[order]
    bounds = np.searchsorted(users, np.arange(dataset.num_users + 1))
    return [followed[bounds[u]:bounds[u + 1]] for u in range(dataset.num_users)]


def _hit_rate(score, test, seen, num_items, k=10, negatives=100, seed=0):
    """HR@k of each held-out (user, item) against ``negatives`` sampled unseen items.

    Ties count against the held-out item, so a constant scorer gets zero, not luck.
    """
    rng = np.random.default_rng(seed)
    hits = []
    for user, item in zip(test["user"].values, test["item"].values):
        unseen = np.flatnonzero(~seen[user])
        candidates = np.concatenate([[item], rng.choice(unseen, size=negatives, replace=False)])
        scores = score(user, candidates)
        hits.append((scores[1:] >= scores[0]).sum() < k)
    return float(np.mean(hits))


# ----------------------------------------------------------------------------- format and determinism


def test_same_seed_gives_byte_identical_files(world_path, config, tmp_path):
    again = write_world(str(tmp_path / "again"), dataclasses.replace(config))
    tables = ["users.tsv", "items.tsv", "social.tsv", "post_tags.tsv", "groups.tsv", "dataset.yaml"] + \
             [os.path.join("interactions", f"{s}.tsv") for s in ("train", "validation", "test")]
    for table in tables:
        assert filecmp.cmp(os.path.join(world_path, table), os.path.join(again, table), shallow=False), table
    for archive in ("features/pixels.npz", "images.npz", "synthetic_truth.npz"):
        with np.load(os.path.join(world_path, archive)) as a, np.load(os.path.join(again, archive)) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{archive}:{key}")


def test_different_seed_gives_a_different_world(config, dataset):
    other = generate_world(dataclasses.replace(config, seed=config.seed + 1))
    train = dataset.split("train")
    first = set(zip(dataset.user_ids[train["user"]], dataset.item_ids[train["item"]]))
    second = set(zip(other["interactions"]["train"]["user"], other["interactions"]["train"]["item"]))
    assert len(first & second) < 0.5 * len(first)
    assert not np.array_equal(other["images"][1], dataset.images())


def test_written_world_loads_with_every_table(dataset, config):
    assert dataset.num_users == config.num_users and dataset.num_items == config.num_items
    assert set(dataset.interactions) == {"train", "validation", "test"}
    for table in (dataset.social, dataset.post_tags, dataset.groups):
        assert table is not None and len(table) > 0
    assert (dataset.item_creator >= 0).all() and (dataset.item_artist >= 0).all()
    assert len(dataset.artist_ids) <= config.num_artists
    assert all(len(tags) == config.tags_per_item for tags in dataset.item_tags)
    assert dataset.feature_names() == ["pixels"]
    assert dataset.features("pixels").shape == (config.num_items, config.feature_dim)
    images = dataset.images()
    assert images.shape == (config.num_items, config.image_size, config.image_size, 3)
    assert images.dtype == np.uint8 and images.std() > 10  # not blank
    for split in dataset.interactions.values():
        assert {"timestamp", "basket"} <= set(split.columns)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_users"):
        SyntheticWorldConfig(num_users="many")
    with pytest.raises(ValueError, match="popularity_weight"):
        SyntheticWorldConfig(popularity_weight=1.5)
    with pytest.raises(ValueError, match="num_creators"):
        SyntheticWorldConfig(num_users=10, num_creators=20)
    fields = {f.name: f.type for f in dataclasses.fields(SyntheticWorldConfig)}
    assert set(fields.values()) <= {int, float, str, bool}


# ----------------------------------------------------------------------------- splits and baskets


def test_splits_are_last_basket_out_disjoint_and_non_empty(dataset):
    train, validation, test = (dataset.split(s) for s in ("train", "validation", "test"))
    for split in (train, validation, test):
        assert split["user"].nunique() == dataset.num_users  # every user has every split
    for held_out in (validation, test):
        # The held-out split of a user is one basket at one timestamp.
        assert (held_out.groupby("user")["timestamp"].nunique() == 1).all()
        assert (held_out.groupby("user")["basket"].nunique() == 1).all()
    pairs = [set(zip(s["user"], s["item"])) for s in (train, validation, test)]
    assert not (pairs[0] & pairs[1]) and not (pairs[0] & pairs[2]) and not (pairs[1] & pairs[2])
    last_train = train.groupby("user")["timestamp"].max()
    val_time = validation.groupby("user")["timestamp"].first()
    test_time = test.groupby("user")["timestamp"].first()
    assert (last_train < val_time).all() and (val_time < test_time).all()


def test_baskets_are_one_moment_and_coherent(dataset, truth):
    likes = _all_likes(dataset)
    per_basket = likes.groupby("basket").agg(users=("user", "nunique"), times=("timestamp", "nunique"))
    assert (per_basket["users"] == 1).all() and (per_basket["times"] == 1).all()
    # ... and a user's items at one timestamp are one basket.
    assert (likes.groupby(["user", "timestamp"])["basket"].nunique() == 1).all()

    likes = likes.assign(topic=truth["item_topic"][likes["item"]], artist=dataset.item_artist[likes["item"]])
    multi = likes.groupby("basket").filter(lambda b: len(b) > 1)
    assert multi["basket"].nunique() > 100
    assert (multi.groupby("basket")["topic"].nunique() == 1).mean() > 0.9
    # Artist coherence beyond topic: basket mates share an artist more than same-topic item pairs do.
    mates = multi.merge(multi, on="basket")
    mates = mates[mates["item_x"] != mates["item_y"]]
    same_artist_in_basket = (mates["artist_x"] == mates["artist_y"]).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, dataset.num_items, size=(2, 20000))
    same_topic = truth["item_topic"][a] == truth["item_topic"][b]
    same_artist_by_topic = (dataset.item_artist[a] == dataset.item_artist[b])[same_topic].mean()
    assert 1 - same_artist_in_basket < 0.6 * (1 - same_artist_by_topic), (same_artist_in_basket,
                                                                          same_artist_by_topic)


# ----------------------------------------------------------------------------- images and features


def test_features_are_finite_and_cluster_by_topic(dataset, truth, config):
    features = dataset.features("pixels")
    assert np.isfinite(features).all()
    topic = truth["item_topic"]
    fit = np.arange(dataset.num_items) % 2 == 0
    topics = np.unique(topic[fit])
    centroids = np.stack([features[fit & (topic == t)].mean(axis=0) for t in topics])
    distance = ((features[~fit, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = (topics[distance.argmin(axis=1)] == topic[~fit]).mean()
    assert accuracy > 0.8 and accuracy > 8 / config.num_topics


def test_features_come_from_pixels_alone(dataset, config):
    recomputed = pixel_features(dataset.images(), config.feature_dim)
    np.testing.assert_allclose(recomputed, dataset.features("pixels"), atol=1e-5)


# ----------------------------------------------------------------------------- planted signals


def test_taste_beats_popularity_and_popularity_beats_chance(dataset, truth):
    train = dataset.split("train")
    seen = np.zeros((dataset.num_users, dataset.num_items), dtype=bool)
    likes = _all_likes(dataset)
    seen[likes["user"], likes["item"]] = True
    popularity = np.bincount(train["item"], minlength=dataset.num_items).astype(float)
    topic = truth["item_topic"]
    num_topics = truth["user_taste"].shape[1]
    test = dataset.split("test")

    def hit_rate(score):
        return _hit_rate(score, test, seen, dataset.num_items)

    pop_hr = hit_rate(lambda u, c: popularity[c])
    # The planted taste, with popularity within the topic: what the world says drives likes.
    topic_mass = np.bincount(topic, weights=popularity + 1, minlength=num_topics)
    planted_hr = hit_rate(lambda u, c: truth["user_taste"][u, topic[c]] * (popularity[c] + 1) / topic_mass[topic[c]])
    # A user's topic profile learned from their train likes alone; popularity breaks ties.
    profile = np.zeros((dataset.num_users, num_topics))
    np.add.at(profile, (train["user"].values, topic[train["item"].values]), 1.0)
    learned_hr = hit_rate(lambda u, c: profile[u, topic[c]] + 1e-3 * popularity[c])

    chance = 10 / 101
    assert pop_hr > 1.3 * chance, (pop_hr, chance)
    assert planted_hr > 2 * pop_hr, (planted_hr, pop_hr)
    assert learned_hr > 1.25 * pop_hr, (learned_hr, pop_hr)


def test_follows_are_homophilous(dataset, truth):
    unit = truth["user_taste"] / np.linalg.norm(truth["user_taste"], axis=1, keepdims=True)
    social = dataset.social
    followed = (unit[social["user"]] * unit[social["followed"]]).sum(1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, dataset.num_users, size=(2, 20000))
    random = (unit[a] * unit[b]).sum(1).mean()
    assert followed > random + 0.2, (followed, random)
    # Creators are followed more than their share of users.
    assert truth["user_is_creator"][social["followed"]].mean() > 1.5 * truth["user_is_creator"].mean()


def test_social_users_held_out_items_are_liked_by_their_followees(dataset, truth):
    likes = _all_likes(dataset)
    liked = np.zeros((dataset.num_users, dataset.num_items), dtype=bool)
    liked[likes["user"], likes["item"]] = True
    followees = _followees(dataset)
    # Validation and test baskets together: twice the sample of test alone.
    held_out = pd.concat([dataset.split("validation"), dataset.split("test")], ignore_index=True)
    by_followee = np.array([liked[followees[u], i].any() for u, i in zip(held_out["user"], held_out["item"])])
    driver = truth["user_driver"][held_out["user"]]
    assert (driver == "upload").sum() >= 50
    rate = {d: by_followee[driver == d].mean() for d in ("social", "upload")}
    assert rate["social"] > rate["upload"] + 0.15, rate


def test_creator_users_like_the_creators_they_follow(dataset, truth):
    followees = _followees(dataset)
    test = dataset.split("test")
    creator = dataset.item_creator[test["item"]]
    by_followed = np.array([c in followees[u] for u, c in zip(test["user"], creator)])
    driver = truth["user_driver"][test["user"]]
    assert by_followed[driver == "creator"].mean() > 2 * by_followed[driver != "creator"].mean()


def test_upload_users_like_items_of_their_upload_topics(dataset, truth):
    topic = truth["item_topic"]
    upload_topics = [set(topic[dataset.item_creator == u]) for u in range(dataset.num_users)]
    test = dataset.split("test")
    in_upload_topic = np.array([topic[i] in upload_topics[u] for u, i in zip(test["user"], test["item"])])
    driver = truth["user_driver"][test["user"]]
    creators = truth["user_is_creator"][test["user"]]
    assert set(truth["user_driver"][~truth["user_is_creator"]]) <= set(DRIVERS) - {"upload"}
    assert in_upload_topic[driver == "upload"].mean() > in_upload_topic[creators & (driver != "upload")].mean() + 0.1


def test_post_tags_use_personal_vocabulary_and_item_topic(dataset, truth):
    tags = dataset.post_tags.assign(word=dataset.tag_ids[dataset.post_tags["tag"]])
    vocab = [set(words) for words in truth["user_personal_vocab"]]
    rng = np.random.default_rng(0)
    stranger = rng.integers(0, dataset.num_users, size=len(tags))
    own = np.mean([w in vocab[u] for u, w in zip(tags["user"], tags["word"])])
    chance = np.mean([w in vocab[s] for s, w in zip(stranger, tags["word"])])
    assert own > 4 * chance, (own, chance)
    # The rest are words of the item's own topic.
    topic_words = tags[tags["word"].str.startswith("topic")]
    word_topic = topic_words["word"].str.extract(r"^topic(\d+)_")[0].astype(int).values
    assert (word_topic == truth["item_topic"][topic_words["item"]]).mean() > 0.99
    assert len(topic_words) > 0.3 * len(tags)


def test_groups_gather_users_of_their_topic(dataset, truth):
    groups = dataset.groups
    group_topic = dict(zip(truth["group_ids"], truth["group_topic"]))
    topic = np.array([group_topic[g] for g in dataset.group_ids])[groups["group"]]
    taste = truth["user_taste"][groups["user"], topic]
    assert taste.mean() > 4 / truth["user_taste"].shape[1]


def test_items_come_from_creators_and_artists_of_their_topic(dataset, truth):
    assert truth["user_is_creator"][dataset.item_creator].all()
    assert set(dataset.item_creator) == set(np.flatnonzero(truth["user_is_creator"]))  # every creator uploads
    artist = truth["item_artist"]
    in_artist_topics = (truth["artist_topics"][artist] == truth["item_topic"][:, None]).any(axis=1)
    assert in_artist_topics.mean() > 0.95


def test_artist_loyalty_brings_users_back_to_their_favourite_artists(config):
    """artist_loyalty: a user's held-out basket comes from one of their favourite artists far more often."""
    def favourite_share(loyalty):
        world = generate_world(dataclasses.replace(config, artist_loyalty=loyalty))
        truth, test = world["truth"], world["interactions"]["test"]
        users = np.searchsorted(truth["user_ids"], test["user"].values)
        artists = truth["item_artist"][np.searchsorted(truth["item_ids"], test["item"].values)]
        return np.mean([a in truth["user_favourite_artists"][u] for u, a in zip(users, artists)])

    without, loyal = favourite_share(0.0), favourite_share(0.9)
    # 24 artists, 2 favourites each chosen for the user's topics: a fair base rate without loyalty.
    assert loyal > 0.8 and without < 0.5, (loyal, without)


# ----------------------------------------------------------------------------- one-of-a-kind works

# A small art store: works by 60 artists, about three times as many works as purchases.
STORE = dict(SMALL, num_users=200, num_items=4800, num_artists=60, one_of_a_kind=True, min_likes_per_user=5,
             mean_likes_per_user=8.0, driver_visual=1.0, driver_social=0.0, driver_creator=0.0, driver_upload=0.0)


def _store_likes(world):
    """Every purchase of a generated world with its split, as catalogue indices (user, item)."""
    truth = world["truth"]
    frames = [frame.assign(split=name) for name, frame in world["interactions"].items()]
    likes = pd.concat(frames, ignore_index=True)
    return likes.assign(u=np.searchsorted(truth["user_ids"], likes["user"]),
                        i=np.searchsorted(truth["item_ids"], likes["item"]))


@pytest.fixture(scope="module")
def store():
    return generate_world(SyntheticWorldConfig(**STORE))


def test_one_of_a_kind_sells_every_work_once_so_every_next_purchase_is_new(store):
    likes = _store_likes(store)
    assert likes["i"].value_counts().max() == 1  # no work is bought twice, by anyone
    by_split = {name: set(frame["i"]) for name, frame in likes.groupby("split")}
    assert not by_split["test"] & (by_split["train"] | by_split["validation"])
    assert not by_split["validation"] & by_split["train"]
    # The store never ran dry: every collector has a train, a validation and a test basket.
    assert all(likes[likes["split"] == s]["u"].nunique() == STORE["num_users"] for s in ("train", "validation", "test"))
    # Baskets are bought in time order, each at one moment, its works of one topic (the default world's rule).
    topic = store["truth"]["item_topic"]
    assert (likes.groupby("basket")["timestamp"].nunique() == 1).all()
    assert (likes.assign(t=topic[likes["i"]]).groupby("basket")["t"].nunique() == 1).all()
    # Without the option the same collectors share many works (each draws their likes on their own).
    plain = _store_likes(generate_world(SyntheticWorldConfig(**dict(STORE, one_of_a_kind=False))))
    assert (plain["i"].value_counts() > 1).sum() > 150


def test_one_of_a_kind_collectors_keep_their_taste(store):
    """At artist_loyalty 1 (no popularity or noise purchases) every work a collector buys, the new
    ones of the test basket included, is by one of their favourite artists."""
    world = generate_world(SyntheticWorldConfig(**dict(STORE, artist_loyalty=1.0, popularity_weight=0.0,
                                                       noise_weight=0.0)))
    likes, truth = _store_likes(world), world["truth"]
    favourite = truth["user_favourite_artists"][likes["u"]]
    assert (favourite == truth["item_artist"][likes["i"]][:, None]).any(axis=1).all()
    assert likes["i"].value_counts().max() == 1 and (likes["split"] == "test").sum() >= STORE["num_users"]
    # ... and at the demo's 0.9, nine test purchases in ten or so (the rest: taste, popularity, noise).
    loyal = _store_likes(generate_world(SyntheticWorldConfig(**dict(STORE, artist_loyalty=0.9))))
    test = loyal[loyal["split"] == "test"]
    share = (truth["user_favourite_artists"][test["u"]] == truth["item_artist"][test["i"]][:, None]).any(axis=1)
    assert share.mean() > 0.8, share.mean()


def test_one_of_a_kind_needs_a_catalogue_for_the_purchases(tmp_path):
    with pytest.raises(ValueError, match="one_of_a_kind sells every item once: num_items must be >= "
                                         r"num_users \* mean_likes_per_user \(the expected purchases, 2000\)"):
        SyntheticWorldConfig(**dict(STORE, num_items=1999, mean_likes_per_user=10.0))
    with pytest.raises(ConfigError, match="data.synthetic.one_of_a_kind.*num_items must be"):
        config_lib.load_config(None, ["data.synthetic.one_of_a_kind=true"])


def test_artist_tint_makes_an_artists_hand_visible():
    """The nearest work by raw feature cosine is by the same artist far more often with a strong tint."""
    def same_artist_neighbour(tint):
        world = generate_world(SyntheticWorldConfig(**dict(SMALL, num_items=1500, num_topics=4, artist_tint=tint)))
        vectors, artist = world["features"]["pixels"][1], world["truth"]["item_artist"]
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return (artist[similarity.argmax(axis=1)] == artist).mean()

    faint, none, strong = same_artist_neighbour(18.0), same_artist_neighbour(0.0), same_artist_neighbour(60.0)
    assert strong > faint + 0.15 and faint > none, (none, faint, strong)


def test_later_knobs_at_their_default_keep_every_worlds_cache_key(tmp_path, monkeypatch):
    """One_of_a_kind, artist_tint (and topic_palettes before them) at their defaults leave the cache key
    of every existing world as it was: golden keys of the default world and of curatornet_synthetic's."""
    monkeypatch.setattr(resolve.synthetic, "write_world", lambda path, world: os.makedirs(path))  # key only
    default = config_lib.load_config(None, [f"data.cache_dir={tmp_path}"])
    loyal = config_lib.load_config(None, [f"data.cache_dir={tmp_path}", "data.synthetic.artist_loyalty=0.9"])
    assert os.path.basename(resolve.dataset_path(default.data)) == "synthetic-bd0da1adfeb7"
    assert os.path.basename(resolve.dataset_path(loyal.data)) == "synthetic-9110d66e3014"
    world = SyntheticWorldConfig()
    assert not {"one_of_a_kind", "artist_tint", "topic_palettes"} & set(key_fields(world))
    assert "topic_palettes" in recorded_fields(world) and not {"one_of_a_kind", "artist_tint"} & set(
        recorded_fields(world))
    store = SyntheticWorldConfig(**STORE, artist_tint=60.0)
    assert key_fields(store)["one_of_a_kind"] is True and recorded_fields(store)["artist_tint"] == 60.0
