"""The synthetic social image world: tfvrec's embedded default data set.

A small image-sharing platform whose hidden structure is known, so every model in
the zoo has something real to find and tests can check that it finds it. What the
world plants, and which model each part is for:

* **Topics -> pixels.** Every image has one topic. Its topic fixes a colour palette,
  a foreground shape and a background stripe texture; the image's own 2-d *style*
  sets shape size and brightness; its artist adds a slight tint; noise and jitter
  make every image different. A CNN can learn topic (and style) from pixels
  (CDL, CNN-PerMLP).
* **Pre-trained features.** Feature set ``pixels`` is a fixed function of the pixels
  alone (colour histograms, a downsampled image and edge energy through a fixed
  random two-layer network), standing in for a frozen ImageNet CNN. Whatever the
  features tell a model, they learned from the image (CuratorNet, HASC's F_i).
* **Users** have a sparse Dirichlet taste over topics and a preferred style.
  **Creators** (a subset of users) upload the images, mostly in their favourite
  topics and near their own style (HASC's upload aspect). **Artists** each work in
  one or two topics.
* **Follows** are homophilous (users follow users of similar taste) and lean
  towards creators (HASC's social and creator aspects; CDL's friends' favourites).
* **Likes** come in timestamped **baskets**, coherent in topic and artist
  (CuratorNet's D1/D2/D3); with ``artist_loyalty`` > 0 users also come back to
  their favourite artists basket after basket (CuratorNet's premise). Each user
  has one planted *driver* for their likes, saved in the ground truth:

  - ``visual``: items of the user's topics near their preferred style;
  - ``social``: what their followees liked, and their followees' topics;
  - ``upload`` (creators only): items resembling the user's own uploads;
  - ``creator``: items uploaded by the creators the user follows.

  A share of every user's likes follows their own visual taste anyway, and all
  likes are tilted towards intrinsically appealing items, plus a popularity and a
  uniform-noise component, so that popularity is a fair baseline to beat.
* **Tags.** Items carry words of their topic's vocabulary ("topic3_word1"). Users
  tag their uploads and some of their likes (``post_tags``) with topic words plus
  words from a small personal vocabulary drawn from a shared pool, so a user's own
  history predicts their tags (CNN-PerMLP's personalisation, CDL's user vector).
* **Groups** are topic-based; users join groups of the topics they like (CDL's
  "liked in the user's groups" negatives).

Splits are leave-last-basket-out by time: per user, the basket with the latest
timestamp is ``test``, the one before is ``validation``, the rest is ``train``.

`generate_world` builds everything in memory; `write_world` writes it in the
tfvrec data set format (via `write_dataset`) plus the ground truth in
``synthetic_truth.npz``, read back with `load_truth`. Same config and seed, same
bytes: every random step draws from its own stream, keyed by the seed.
"""
import dataclasses
import os

import numpy as np
import pandas as pd

from tfvrec import progress
from tfvrec.data.dataset import write_dataset
from tfvrec import outputs
from tfvrec import input_files

DRIVERS = ("visual", "social", "upload", "creator")
TRUTH_FILE = "synthetic_truth.npz"

# The "pre-trained" feature network is part of the simulated world's physics, not of
# one world instance: it must not change with the seed.
_FEATURE_NETWORK_SEED = 20160627
_NUM_SHAPES = 5
_POOL_GRID = 8  # downsampled image side fed to the feature network
_EDGE_GRID = 4
_HIST_BINS = 8
_CHROMA_BINS = 6
_ADMIRER_BOOST = 5.0  # creator-driven users lean this much more towards following creators
_BLOCK_ROWS = 256  # users per block when scoring dense user x item matrices

# One named random stream per generation step, so changing how one step draws
# leaves every other step's draws (and tables) unchanged.
_STREAMS = ("users", "drivers", "items", "look", "render", "follows", "likes", "social_likes",
            "baskets", "vocab", "post_tags", "groups", "loyalty")


@dataclasses.dataclass
class SyntheticWorldConfig:
    """Size and knobs of the synthetic world. Plain int/float/str fields only."""

    name: str = "synthetic"
    seed: int = 0
    num_users: int = 1000
    num_items: int = 3000
    num_topics: int = 20
    num_creators: int = 200  # a random subset of the users; every creator uploads
    num_artists: int = 100
    image_size: int = 32
    feature_dim: int = 64
    image_noise: float = 12.0  # std of per-pixel noise, in uint8 levels
    # 0: every topic has its own colours. k > 0: topic t takes the colours of topic t mod k, so
    # topics differ in shape and texture only and a colour histogram cannot tell them apart
    # (CNN-PerMLP's learned features vs CH-PerMLP). Opt-in: 0 leaves the world unchanged.
    topic_palettes: int = 0

    # Tastes. Small concentration: each user cares about a few topics.
    taste_concentration: float = 0.08
    style_bandwidth: float = 0.25  # how close to their preferred style a user's likes are

    # Likes: heavy-tailed counts (log-normal), grouped in baskets.
    mean_likes_per_user: float = 30.0
    likes_spread: float = 0.9  # log-normal sigma of the number of likes per user
    min_likes_per_user: int = 5
    mean_basket_size: float = 2.0
    basket_artist_affinity: float = 4.0  # a basket's other items are (1 + this) x likelier by its artist
    # Repeat purchases: each user has `favourite_artists` artists among their topics, and
    # this share of their like distribution goes to those artists' works, so a user's
    # baskets come back to the same artists (the premise of CuratorNet's guidelines).
    artist_loyalty: float = 0.0
    favourite_artists: int = 2

    # Drivers. driver_upload is the share of creators driven by their own uploads; all
    # other users draw visual / social / creator in proportion to the three weights.
    driver_upload: float = 0.5
    driver_visual: float = 0.4
    driver_social: float = 0.35
    driver_creator: float = 0.25
    driver_purity: float = 0.85  # share of driver-directed likes; the rest follow own visual taste

    # Popularity and noise, mixed into every user's like distribution.
    popularity_sigma: float = 0.7  # log-normal sigma of intrinsic item appeal
    popularity_weight: float = 0.1
    noise_weight: float = 0.03

    # Follows.
    mean_follows_per_user: float = 12.0
    homophily: float = 0.8  # share of follow choice driven by taste similarity
    homophily_strength: float = 10.0  # inverse temperature on taste cosine
    creator_follow_boost: float = 2.0  # creators are (1 + boost) x more likely to be followed

    # Tags.
    topic_vocab_size: int = 10
    tags_per_item: int = 3
    tag_pool_size: int = 300
    personal_vocab_size: int = 8
    personal_tag_share: float = 0.4
    mean_tags_per_post: float = 3.0
    tagged_like_fraction: float = 0.25

    # Groups.
    num_groups: int = 40
    mean_groups_per_user: float = 2.0

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the first bad field."""
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), field.type
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, kind)
            if not ok:
                raise ValueError(f"synthetic world: field '{field.name}' must be {kind.__name__}, "
                                 f"got {value!r}")

        def need(condition, message):
            if not condition:
                raise ValueError(f"synthetic world: {message}")

        need(self.seed >= 0, "seed must be >= 0")
        need(self.num_users >= 3, "num_users must be >= 3")
        need(1 <= self.num_creators <= self.num_users, "num_creators must be in 1..num_users")
        need(self.num_items >= self.num_creators, "num_items must be >= num_creators (every creator uploads)")
        need(self.num_topics >= 1 and self.num_artists >= 1, "num_topics and num_artists must be >= 1")
        need(self.image_size >= _POOL_GRID, f"image_size must be >= {_POOL_GRID}")
        need(self.feature_dim >= 1, "feature_dim must be >= 1")
        need(self.topic_palettes >= 0, "topic_palettes must be >= 0 (0: a palette per topic)")
        need(3 <= self.min_likes_per_user <= self.num_items // 4,
             "min_likes_per_user must be in 3..num_items/4 (three baskets per user; likes are capped "
             "at a quarter of the items)")
        need(self.mean_likes_per_user >= self.min_likes_per_user, "mean_likes_per_user < min_likes_per_user")
        need(self.mean_basket_size >= 1 and self.basket_artist_affinity >= 0,
             "need mean_basket_size >= 1 and basket_artist_affinity >= 0")
        need(1 <= self.favourite_artists <= self.num_artists, "favourite_artists must be in 1..num_artists")
        for name in ("artist_loyalty", "driver_upload", "driver_purity", "popularity_weight", "noise_weight",
                     "homophily", "personal_tag_share", "tagged_like_fraction"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        need(self.popularity_weight + self.noise_weight < 1, "popularity_weight + noise_weight must be < 1")
        need(min(self.driver_visual, self.driver_social, self.driver_creator) >= 0
             and self.driver_visual + self.driver_social + self.driver_creator > 0,
             "driver_visual/social/creator must be >= 0 with a positive sum")
        need(self.taste_concentration > 0 and self.style_bandwidth > 0, "taste_concentration and "
             "style_bandwidth must be > 0")
        need(self.mean_follows_per_user >= 1, "mean_follows_per_user must be >= 1")
        need(1 <= self.tags_per_item <= self.topic_vocab_size, "tags_per_item must be in 1..topic_vocab_size")
        need(1 <= self.personal_vocab_size <= self.tag_pool_size, "personal_vocab_size must be in 1..tag_pool_size")
        need(self.mean_tags_per_post >= 1, "mean_tags_per_post must be >= 1")
        need(self.num_groups >= 1 and 1 <= self.mean_groups_per_user <= self.num_groups,
             "need num_groups >= 1 and 1 <= mean_groups_per_user <= num_groups")
        need(self.image_noise >= 0 and self.popularity_sigma >= 0 and self.likes_spread >= 0,
             "image_noise, popularity_sigma and likes_spread must be >= 0")


# ----------------------------------------------------------------------------- public API


def generate_world(config=None) -> dict:
    """Generate the world in memory.

    Returns a dict with the keyword arguments of `write_dataset` (``users``, ``items``,
    ``interactions``, ``social``, ``post_tags``, ``groups``, ``features``, ``images``,
    ``metadata``) plus ``truth``, the planted structure (see `load_truth`).
    """
    config = config or SyntheticWorldConfig()
    config.validate()
    rng = {name: np.random.default_rng([config.seed, k]) for k, name in enumerate(_STREAMS)}
    U, I, T = config.num_users, config.num_items, config.num_topics

    taste = rng["users"].dirichlet(np.full(T, config.taste_concentration), size=U)
    user_style = rng["users"].uniform(size=(U, 2))
    creators = np.sort(rng["users"].choice(U, size=config.num_creators, replace=False))
    is_creator = np.zeros(U, dtype=bool)
    is_creator[creators] = True
    driver = _draw_drivers(config, is_creator, rng["drivers"])

    items = _make_items(config, taste, user_style, creators, rng["items"])
    pixels = render_images(config, items, rng["look"], rng["render"])
    vectors = pixel_features(pixels, config.feature_dim)

    follows = _make_follows(config, taste, is_creator, driver, rng["follows"])
    favourites = _favourite_artists(config, taste, items, rng["loyalty"])
    baskets = _make_likes(config, taste, user_style, driver, follows, items, favourites, rng["likes"],
                          rng["social_likes"])
    likes = [np.concatenate(b) for b in baskets]
    splits = _split_by_last_basket(_timestamp_baskets(baskets, rng["baskets"]))

    personal_vocab, topic_vocab, topic_word_weights = _make_vocab(config, rng["vocab"])
    item_tags = _draw_topic_words(items["topic"], config.tags_per_item, topic_vocab, topic_word_weights,
                                  rng["vocab"])
    post_tags = _make_post_tags(config, likes, items, personal_vocab, topic_vocab, topic_word_weights,
                                rng["post_tags"])
    group_topic, memberships = _make_groups(config, taste, rng["groups"])

    user_ids = np.array([f"u{u:0{_width(U)}d}" for u in range(U)])
    item_ids = np.array([f"i{i:0{_width(I)}d}" for i in range(I)])
    artist_ids = np.array([f"a{a:0{_width(config.num_artists)}d}" for a in range(config.num_artists)])
    group_ids = np.array([f"g{g:0{_width(config.num_groups)}d}" for g in range(config.num_groups)])

    interactions = {
        split: pd.DataFrame({"user": user_ids[frame["user"]], "item": item_ids[frame["item"]],
                             "timestamp": frame["timestamp"].astype(np.int64),
                             "basket": [f"b{b:06d}" for b in frame["basket"]]})
        for split, frame in splits.items()}
    truth = {
        "user_ids": user_ids, "item_ids": item_ids, "artist_ids": artist_ids, "group_ids": group_ids,
        "user_taste": taste, "user_style": user_style, "user_driver": np.array(DRIVERS)[driver],
        "user_is_creator": is_creator, "user_personal_vocab": personal_vocab,
        "item_topic": items["topic"], "item_style": items["style"], "item_appeal": items["appeal"],
        "item_creator": items["creator"], "item_artist": items["artist"],
        "artist_topics": items["artist_topics"], "group_topic": group_topic, "topic_vocab": topic_vocab,
        "user_favourite_artists": favourites,
    }
    return {
        "users": pd.DataFrame({"user": user_ids}),
        "items": pd.DataFrame({"item": item_ids, "creator": user_ids[items["creator"]],
                               "artist": artist_ids[items["artist"]], "tags": item_tags}),
        "interactions": interactions,
        "social": pd.DataFrame({"user": user_ids[follows[0]], "followed": user_ids[follows[1]]}),
        "post_tags": pd.DataFrame({"user": user_ids[post_tags[0]], "item": item_ids[post_tags[1]],
                                   "tag": post_tags[2]}),
        "groups": pd.DataFrame({"group": group_ids[memberships[0]], "user": user_ids[memberships[1]]}),
        "features": {"pixels": (item_ids, vectors)},
        "images": (item_ids, pixels),
        "metadata": {"name": config.name, "source": "tfvrec.data.synthetic",
                     "notes": "Synthetic social image world with planted structure; ground truth in "
                              f"{TRUTH_FILE}.",
                     "config": dataclasses.asdict(config)},
        "truth": truth,
    }


def write_world(path, config=None, overwrite=False):
    """Generate the world and write it to ``path`` (data set format + ``synthetic_truth.npz``)."""
    outputs.prepare(path, "dataset", overwrite=overwrite)  # (before the work: refuse early)
    world = generate_world(config)
    truth = world.pop("truth")
    return write_dataset(path, overwrite=overwrite, also_write=lambda tmp: np.savez_compressed(
        os.path.join(tmp, TRUTH_FILE), **truth), **world)


def load_truth(path) -> dict:
    """The planted ground truth of a written world, as a dict of arrays.

    Index-valued arrays (``item_topic``, ``item_creator``, ``item_artist``,
    ``artist_topics``, ``group_topic``) use the row order of ``user_ids`` / ``item_ids``
    / ``artist_ids`` / ``group_ids`` stored alongside them, which is also the order of
    ``users.tsv`` / ``items.tsv``. ``user_driver`` holds one of `DRIVERS` per user.
    """
    return input_files.load_npz(os.path.join(path, TRUTH_FILE), "the synthetic world's ground truth")


def render_images(config, items, look_rng, render_rng):
    """RGB uint8 images ``[num_items, s, s, 3]`` drawn from topic, style and artist."""
    T, S, n = config.num_topics, config.image_size, len(items["topic"])
    topic, style = items["topic"], items["style"]

    # Topic looks are spread out on purpose (evenly spaced hues, cycling shapes, a
    # texture per topic block) so that distinct topics stay visually distinct.
    bg_hue = look_rng.permutation(T) / T
    fg_hue = (bg_hue + look_rng.uniform(0.3, 0.7, size=T)) % 1.0
    bg = _hsv_to_rgb(bg_hue, look_rng.uniform(0.4, 0.9, size=T), look_rng.uniform(0.5, 0.9, size=T))
    fg = _hsv_to_rgb(fg_hue, look_rng.uniform(0.6, 1.0, size=T), look_rng.uniform(0.6, 1.0, size=T))
    shape = np.arange(T) % _NUM_SHAPES
    block = np.arange(T) // _NUM_SHAPES
    stripe_freq = 1.5 + (block % 4) + look_rng.uniform(0, 0.5, size=T)
    stripe_angle = np.pi * ((block * 0.37 + look_rng.uniform(0, 0.2, size=T)) % 1.0)
    artist_tint = look_rng.normal(0, 18, size=(config.num_artists, 3))
    if config.topic_palettes:  # (after every draw: the other looks stay those of the default world)
        shared = np.arange(T) % config.topic_palettes
        bg, fg = bg[shared], fg[shared]

    grid = np.arange(S, dtype=np.float32) + 0.5
    ys, xs = grid[None, :, None], grid[None, None, :]
    centre = S / 2 + render_rng.normal(0, S * 0.07, size=(n, 2)).astype(np.float32)
    radius = (S * (0.16 + 0.24 * style[:, 0])).astype(np.float32)[:, None, None]
    inside = np.empty((n, S, S), dtype=bool)
    for kind in range(_NUM_SHAPES):
        rows = np.flatnonzero(shape[topic] == kind)
        inside[rows] = _shape_mask(kind, ys - centre[rows, 0, None, None], xs - centre[rows, 1, None, None],
                                   radius[rows])

    angle = stripe_angle[topic][:, None, None]
    phase = render_rng.uniform(0, 2 * np.pi, size=n)[:, None, None]
    wave = np.sin(2 * np.pi * stripe_freq[topic][:, None, None] * (xs * np.cos(angle) + ys * np.sin(angle)) / S
                  + phase).astype(np.float32)
    background = bg[topic].astype(np.float32)[:, None, None, :] * (1 + 0.3 * wave[..., None])
    foreground = (fg[topic] + artist_tint[items["artist"]]).astype(np.float32)[:, None, None, :]
    image = np.where(inside[..., None], foreground, background)
    image *= (0.55 + 0.6 * style[:, 1]).astype(np.float32)[:, None, None, None]  # style 1: brightness
    image += render_rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(config.image_noise)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _shape_mask(kind, dy, dx, radius):
    """Pixels inside shape ``kind`` (disc, square, diamond, ring, cross) centred at offset 0."""
    if kind == 0:
        return dx * dx + dy * dy < radius * radius
    if kind == 1:
        return np.maximum(np.abs(dx), np.abs(dy)) < radius * 0.85
    if kind == 2:
        return np.abs(dx) + np.abs(dy) < radius * 1.2
    dist = np.sqrt(dx * dx + dy * dy)
    if kind == 3:
        return np.abs(dist - radius * 0.8) < radius * 0.3
    return ((np.abs(dx) < radius * 0.35) | (np.abs(dy) < radius * 0.35)) & (dist < radius * 1.2)


def pixel_features(pixels, dim):
    """The fixed "pre-trained" feature vector of each image, from its pixels alone.

    A chromaticity histogram (colour regardless of brightness, as a trained CNN is
    largely lighting-invariant), a brightness histogram, an 8x8 downsampled image and
    4x4 edge energy, through a fixed random ReLU layer and a tanh projection to
    ``dim``. The network's weights depend only on the image size and ``dim``, never on
    the world's seed. Returns float32 ``[n, dim]``.
    """
    pixels = np.asarray(pixels)
    n, S = len(pixels), pixels.shape[1]
    x = pixels.astype(np.float32) / 255.0

    total = x.sum(-1) + 1e-3
    # r and g shares of the intensity lie in [0, 1]; bins cover [0, 2/3], where most colours fall.
    red, green = [np.minimum((x[..., c] / total * 1.5 * _CHROMA_BINS).astype(np.int64), _CHROMA_BINS - 1)
                  for c in (0, 1)]
    chroma = _histogram(red * _CHROMA_BINS + green, _CHROMA_BINS ** 2)
    light = _histogram(np.minimum((x.mean(-1) * _HIST_BINS).astype(np.int64), _HIST_BINS - 1), _HIST_BINS)
    small = _area_pool(x, _POOL_GRID).reshape(n, -1)
    gy, gx = np.abs(np.diff(x, axis=1)).mean(-1), np.abs(np.diff(x, axis=2)).mean(-1)
    edges = np.concatenate([_area_pool(gy[..., None], _EDGE_GRID), _area_pool(gx[..., None], _EDGE_GRID)],
                           axis=-1).reshape(n, -1)
    # Scales put the four parts on a par; colour dominates, as it does for the topics.
    inputs = np.concatenate([chroma * 8.0, light * 2.0, small - 0.5, edges * 8.0], axis=1)

    weights = np.random.default_rng([_FEATURE_NETWORK_SEED, S, dim])
    hidden_dim = 256
    w1 = weights.normal(0, 1 / np.sqrt(inputs.shape[1]), size=(inputs.shape[1], hidden_dim)).astype(np.float32)
    b1 = weights.normal(0, 0.1, size=hidden_dim).astype(np.float32)
    w2 = weights.normal(0, 1 / np.sqrt(hidden_dim), size=(hidden_dim, dim)).astype(np.float32)
    hidden = np.maximum(inputs.astype(np.float32) @ w1 + b1, 0)
    return np.tanh(hidden @ w2).astype(np.float32)


def _histogram(bins, size):
    """Per-image normalised histogram of integer ``bins`` ``[n, h, w]`` -> ``[n, size]``."""
    n = len(bins)
    slot = np.arange(n)[:, None, None] * size + bins
    return np.bincount(slot.ravel(), minlength=n * size).reshape(n, size) / bins[0].size


# ----------------------------------------------------------------------------- users and items


def _draw_drivers(config, is_creator, rng):
    others = np.array([config.driver_visual, config.driver_social, 0.0, config.driver_creator])
    others = others / others.sum()
    driver = rng.choice(len(DRIVERS), size=len(is_creator), p=others)
    upload = is_creator & (rng.uniform(size=len(is_creator)) < config.driver_upload)
    driver[upload] = DRIVERS.index("upload")
    return driver


def _make_items(config, taste, user_style, creators, rng):
    """Who uploaded each item, its topic, style, appeal and artist."""
    I, T, A = config.num_items, config.num_topics, config.num_artists
    # Every creator uploads at least once; beyond that, activity is heavy-tailed.
    activity = rng.lognormal(0, 1.0, size=len(creators))
    rest = rng.choice(creators, size=I - len(creators), p=activity / activity.sum())
    creator = rng.permutation(np.concatenate([creators, rest]))

    # Creators upload in their favourite topics (sharpened taste) near their own style.
    upload_taste = taste[creator] ** 2 + 1e-6
    topic = _sample_rows(upload_taste, rng)
    style = np.clip(user_style[creator] + rng.normal(0, 0.12, size=(I, 2)), 0, 1)
    appeal = rng.lognormal(0, config.popularity_sigma, size=I) if config.popularity_sigma > 0 else np.ones(I)

    # Artists: primary topics cycle so every topic has one when A >= T; half add a second topic.
    artist_topics = np.full((A, 2), -1, dtype=np.int64)
    artist_topics[:, 0] = rng.permutation(A) % T
    second = rng.uniform(size=A) < 0.5
    artist_topics[second, 1] = rng.integers(0, T, size=int(second.sum()))
    artist_fame = rng.lognormal(0, 0.7, size=A)
    artist = np.empty(I, dtype=np.int64)
    for t in range(T):
        rows = np.flatnonzero(topic == t)
        if len(rows) == 0:
            continue
        pool = np.flatnonzero((artist_topics == t).any(axis=1))
        pool = pool if len(pool) else np.arange(A)
        artist[rows] = rng.choice(pool, size=len(rows), p=artist_fame[pool] / artist_fame[pool].sum())
    return {"creator": creator.astype(np.int64), "topic": topic, "style": style, "appeal": appeal,
            "artist": artist, "artist_topics": artist_topics}


# ----------------------------------------------------------------------------- follows and likes


def _make_follows(config, taste, is_creator, driver, rng):
    """(follower, followed) index arrays: homophilous, tilted to creators."""
    U = config.num_users
    unit = taste / np.linalg.norm(taste, axis=1, keepdims=True)
    counts = _heavy_tailed_counts(rng, U, config.mean_follows_per_user, 0.7, 1, U - 1)
    creator_driven = driver == DRIVERS.index("creator")
    followers, followed = [], []
    for start in progress.bar(range(0, U, _BLOCK_ROWS), desc="synthetic world", unit="block"):
        rows = np.arange(start, min(start + _BLOCK_ROWS, U))
        logits = config.homophily_strength * (unit[rows] @ unit.T)
        similar = np.exp(logits - logits.max(axis=1, keepdims=True))
        similar /= similar.sum(axis=1, keepdims=True)
        weight = (1 - config.homophily) / U + config.homophily * similar
        # Creator-driven users' likes need creators to admire: they follow creators far more.
        boost = np.where(creator_driven[rows, None], _ADMIRER_BOOST, 1.0) * config.creator_follow_boost
        weight = weight * (1 + boost * is_creator[None, :])
        keys = np.log(weight) + rng.gumbel(size=weight.shape)
        keys[np.arange(len(rows)), rows] = -np.inf
        order = np.argsort(-keys, axis=1, kind="stable")
        for n, user in enumerate(rows):
            chosen = order[n, :counts[user]]
            if creator_driven[user] and not is_creator[chosen].any():
                admired = next((c for c in order[n] if is_creator[c] and c != user), None)
                chosen = chosen if admired is None else np.append(chosen, admired)
            followers.append(np.full(len(chosen), user))
            followed.append(chosen)
    return np.concatenate(followers), np.concatenate(followed)


def _favourite_artists(config, taste, items, rng):
    """``[num_users, favourite_artists]`` artist indices: artists with much work in the user's topics."""
    U, A = config.num_users, config.num_artists
    catalogue = np.zeros((config.num_topics, A))
    np.add.at(catalogue, (items["topic"], items["artist"]), 1.0)
    weight = taste @ catalogue + 1e-9  # expected liked works per artist under the user's taste
    keys = np.log(weight) + rng.gumbel(size=(U, A))
    return np.argsort(-keys, axis=1, kind="stable")[:, :config.favourite_artists]


def _make_likes(config, taste, user_style, driver, follows, items, favourites, rng, social_rng):
    """List (per user) of liked baskets (arrays of item indices), drawn by the user's planted driver."""
    U, I = config.num_users, config.num_items
    topic, appeal = items["topic"], items["appeal"]
    counts = _heavy_tailed_counts(rng, U, config.mean_likes_per_user, config.likes_spread,
                                  config.min_likes_per_user, I // 4)
    uploads = _group(items["creator"], np.arange(I), U)
    followees = _group(follows[0], follows[1], U)
    topic_items = _group(topic, np.arange(I), config.num_topics)
    purity = config.driver_purity
    popularity = appeal / appeal.sum()
    unit = taste / np.linalg.norm(taste, axis=1, keepdims=True)

    def draw(user, driven, visual, stream):
        """Mix in own taste, popularity and noise (never one's own uploads), then draw baskets."""
        p = (1 - config.popularity_weight - config.noise_weight) * (purity * driven + (1 - purity) * visual) \
            + config.popularity_weight * popularity + config.noise_weight / I
        p[uploads[user]] = 0
        if config.artist_loyalty > 0:
            loyal = p * np.isin(items["artist"], favourites[user])
            if loyal.sum() > 0:
                p = (1 - config.artist_loyalty) * p / p.sum() + config.artist_loyalty * loyal / loyal.sum()
        return _draw_baskets(config, p, counts[user], items, topic_items, stream)

    baskets = [None] * U
    for start in progress.bar(range(0, U, _BLOCK_ROWS), desc="synthetic world", unit="block"):
        rows = np.arange(start, min(start + _BLOCK_ROWS, U))
        visual = _visual_taste(taste[rows], user_style[rows], items, config)
        for n, user in enumerate(rows):
            kind = DRIVERS[driver[user]]
            if kind == "social":
                continue
            if kind == "upload":
                own = uploads[user]
                similar = (_style_kernel(items["style"][own], items["style"], config.style_bandwidth)
                           * (topic[own][:, None] == topic[None, :])).sum(axis=0)
                driven = _normalize(similar * appeal)
            elif kind == "creator":
                admired = np.isin(items["creator"], followees[user])
                driven = _normalize(admired * appeal) if admired.any() else visual[n]
            else:
                driven = visual[n]
            baskets[user] = draw(user, driven, visual[n], rng)

    # Social users like what their followees liked, so they go after everyone else,
    # one at a time in random order (a social followee counts once it has liked).
    for user in social_rng.permutation(np.flatnonzero(driver == DRIVERS.index("social"))):
        friends = followees[user]
        own_visual = _visual_taste(taste[user][None], user_style[user][None], items, config)[0]
        # Influence is uneven: the followees closest in taste sway the user most (what
        # HASC's social attention should recover), but every followee has some say, so
        # the user does not just copy their closest friend.
        closeness = config.homophily_strength * (unit[friends] @ unit[user])
        influence = 0.5 / len(friends) + 0.5 * _normalize(np.exp(closeness - closeness.max()))
        friends_topics = _normalize((influence @ taste[friends])[topic] * appeal)
        active = np.array([baskets[f] is not None for f in friends])
        if active.any():
            friends_likes = np.zeros(I)
            for f, weight in zip(friends[active], influence[active]):
                liked = np.concatenate(baskets[f])
                friends_likes[liked] += weight / len(liked)
            driven = 0.9 * _normalize(friends_likes) + 0.1 * friends_topics
        else:
            driven = friends_topics
        baskets[user] = draw(user, driven, own_visual, social_rng)
    return baskets


def _visual_taste(taste, style, items, config):
    """Like distributions ``[n, num_items]`` of users with these tastes and preferred styles.

    A topic gets the user's taste for it; within the topic, items near the user's
    style (and appealing ones) get more. Normalising per topic keeps style a
    within-topic preference: a rare style never outweighs the user's topics.
    """
    weight = _style_kernel(style, items["style"], config.style_bandwidth) * items["appeal"]
    per_topic = weight @ np.eye(config.num_topics)[items["topic"]]
    return taste[:, items["topic"]] * weight / np.maximum(per_topic[:, items["topic"]], 1e-300)


def _draw_baskets(config, p, count, items, topic_items, rng):
    """``count`` distinct items drawn from ``p``, as baskets coherent in topic and artist.

    Each basket's first item is drawn from ``p``; the rest come from the same topic,
    by ``p`` again but favouring the first item's artist. Drawing whole baskets this
    way (rather than chopping a flat sample) keeps every basket, including the
    held-out last one, as faithful to ``p`` as a single like.
    """
    with np.errstate(divide="ignore"):
        keys = np.log(p) + rng.gumbel(size=len(p))  # Gumbel top-k: sampling without replacement
    order = np.argsort(-keys, kind="stable").tolist()
    count = min(count, int((p > 0).sum()))
    sizes = (1 + rng.poisson(config.mean_basket_size - 1, size=count)).tolist()
    artist_bonus = np.log1p(config.basket_artist_affinity)
    item_topic, item_artist = items["topic"], items["artist"]
    taken = p <= 0  # impossible items count as taken: never drawn as companions
    baskets, total, k = [], 0, 0
    while total < count:
        while taken[order[k]]:
            k += 1
        anchor = order[k]
        taken[anchor] = True
        size = min(sizes[len(baskets)], count - total)
        if size == 1:
            baskets.append(np.array([anchor]))
            total += 1
            continue
        pool = topic_items[item_topic[anchor]]
        pool = pool[~taken[pool]]
        companion_keys = keys[pool] + artist_bonus * (item_artist[pool] == item_artist[anchor])
        companions = pool[np.argsort(-companion_keys, kind="stable")[:size - 1]]
        taken[companions] = True
        baskets.append(np.concatenate([[anchor], companions]))
        total += len(companions) + 1
    while len(baskets) < 3:  # a test, a validation and a train basket per user, when possible
        big = max(range(len(baskets)), key=lambda b: len(baskets[b]))
        if len(baskets[big]) < 2:
            break
        half = len(baskets[big]) // 2
        baskets[big:big + 1] = [baskets[big][:half], baskets[big][half:]]
    return baskets


def _timestamp_baskets(baskets, rng):
    """Put each user's baskets in random time order: a frame (user, item, timestamp, basket).

    Baskets were drawn most-likely first; shuffling keeps the held-out last basket
    a typical one. Basket ids are unique over all users.
    """
    users, item_rows, stamps, basket_ids = [], [], [], []
    next_basket = 0
    for user, user_baskets in enumerate(baskets):
        sizes = np.array([len(b) for b in user_baskets])
        order = rng.permutation(len(user_baskets))
        times = rng.integers(0, 1000) + np.cumsum(1 + rng.geometric(0.2, size=len(order)))
        users.append(np.full(sizes.sum(), user))
        item_rows.extend(user_baskets[b] for b in order)
        stamps.append(np.repeat(times, sizes[order]))
        basket_ids.append(np.repeat(next_basket + np.arange(len(order)), sizes[order]))
        next_basket += len(order)
    return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(item_rows),
                         "timestamp": np.concatenate(stamps), "basket": np.concatenate(basket_ids)})


def _split_by_last_basket(likes):
    """Per user: latest-timestamp basket -> test, the one before -> validation, rest -> train."""
    stamps = likes.groupby("user")["timestamp"]
    rank = stamps.rank(method="dense", ascending=False).astype(int)
    eligible = stamps.transform("nunique") >= 3
    split = np.where(eligible & (rank == 1), "test", np.where(eligible & (rank == 2), "validation", "train"))
    return {name: likes[split == name].sort_values(["user", "timestamp", "item"]).reset_index(drop=True)
            for name in ("train", "validation", "test")}


# ----------------------------------------------------------------------------- tags and groups


def _make_vocab(config, rng):
    """Per-user personal vocabularies (from a shared, Zipf-popular pool) and topic vocabularies."""
    pool = np.array([f"word{k:0{_width(config.tag_pool_size)}d}" for k in range(config.tag_pool_size)])
    pool_weight = 1.0 / np.arange(1, config.tag_pool_size + 1) ** 0.8
    keys = np.log(pool_weight) + rng.gumbel(size=(config.num_users, config.tag_pool_size))
    personal = pool[np.argsort(-keys, axis=1, kind="stable")[:, :config.personal_vocab_size]]
    V = config.topic_vocab_size
    topic_vocab = np.array([[f"topic{t}_word{k}" for k in range(V)] for t in range(config.num_topics)])
    topic_word_weights = 1.0 / np.arange(1, V + 1)
    return personal, topic_vocab, topic_word_weights


def _draw_topic_words(topics, count, topic_vocab, weights, rng):
    keys = np.log(weights) + rng.gumbel(size=(len(topics), len(weights)))
    chosen = np.sort(np.argsort(-keys, axis=1, kind="stable")[:, :count], axis=1)
    return [list(topic_vocab[t][c]) for t, c in zip(topics, chosen)]


def _make_post_tags(config, likes, items, personal_vocab, topic_vocab, topic_word_weights, rng):
    """(user, item, tag) for uploads and a share of likes: topic words mixed with personal words."""
    U, I = config.num_users, config.num_items
    liked_user = np.concatenate([np.full(len(l), u) for u, l in enumerate(likes)])
    liked_item = np.concatenate(likes)
    tagged = rng.uniform(size=len(liked_item)) < config.tagged_like_fraction
    post_user = np.concatenate([items["creator"], liked_user[tagged]])
    post_item = np.concatenate([np.arange(I), liked_item[tagged]])

    per_post = 1 + rng.poisson(config.mean_tags_per_post - 1, size=len(post_user))
    slot_user, slot_item = np.repeat(post_user, per_post), np.repeat(post_item, per_post)
    personal = rng.uniform(size=len(slot_user)) < config.personal_tag_share
    # Both vocabularies are Zipf-ranked: a user's first personal words are their favourites.
    personal_weight = 1.0 / np.arange(1, config.personal_vocab_size + 1)
    personal_pick = rng.choice(config.personal_vocab_size, size=len(slot_user),
                               p=personal_weight / personal_weight.sum())
    topic_pick = rng.choice(len(topic_word_weights), size=len(slot_user),
                            p=topic_word_weights / topic_word_weights.sum())
    tag = np.where(personal, personal_vocab[slot_user, personal_pick],
                   topic_vocab[items["topic"][slot_item], topic_pick])
    frame = pd.DataFrame({"user": slot_user, "item": slot_item, "tag": tag}).drop_duplicates()
    frame = frame.sort_values(["user", "item", "tag"], kind="stable")
    return frame["user"].to_numpy(), frame["item"].to_numpy(), frame["tag"].to_numpy(dtype=str)


def _make_groups(config, taste, rng):
    """Topic-based groups; users join groups of topics they like. Returns (group_topic, (group, user))."""
    G = config.num_groups
    group_topic = np.arange(G) % config.num_topics
    group_topic = group_topic[rng.permutation(G)]
    weight = taste[:, group_topic] + 0.01
    keys = np.log(weight) + rng.gumbel(size=weight.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    counts = np.minimum(1 + rng.poisson(config.mean_groups_per_user - 1, size=config.num_users), G)
    users = np.repeat(np.arange(config.num_users), counts)
    groups = np.concatenate([order[u, :c] for u, c in enumerate(counts)])
    return group_topic, (groups, users)


# ----------------------------------------------------------------------------- helpers


def _width(n):
    return len(str(max(n - 1, 0)))


def _normalize(x):
    x = np.asarray(x, dtype=np.float64)
    return x / x.sum(axis=-1, keepdims=True)


def _style_kernel(a, b, bandwidth):
    """Gaussian similarity of styles, ``[len(a), len(b)]``."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-np.maximum(d2, 0) / (2 * bandwidth ** 2)) + 1e-12


def _sample_rows(weights, rng):
    """One category per row of (unnormalised) ``weights``."""
    cdf = np.cumsum(weights, axis=1)
    draw = rng.uniform(size=(len(weights), 1)) * cdf[:, -1:]
    return np.minimum((draw > cdf).sum(axis=1), weights.shape[1] - 1).astype(np.int64)


def _heavy_tailed_counts(rng, n, mean, spread, low, high):
    """Log-normal counts with the given mean, clipped to [low, high]."""
    raw = rng.lognormal(np.log(mean) - spread ** 2 / 2, spread, size=n)
    return np.clip(np.rint(raw), low, high).astype(np.int64)


def _group(keys, values, n):
    """List of length ``n``: the ``values`` whose key is k, for each k."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n + 1))
    return [values[order[bounds[k]:bounds[k + 1]]] for k in range(n)]


def _area_pool(images, grid):
    """Average-pool ``[n, h, w, c]`` images to ``[n, grid, grid, c]`` for any h, w >= grid."""

    def pool(size):
        cell = (np.arange(size) * grid) // size
        weights = (cell[None, :] == np.arange(grid)[:, None]).astype(np.float32)
        return weights / weights.sum(axis=1, keepdims=True)

    channels_first = np.moveaxis(images, -1, 1).astype(np.float32)  # [n, c, h, w]
    pooled = pool(images.shape[1]) @ channels_first @ pool(images.shape[2]).T
    return np.moveaxis(pooled, 1, -1)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV (all in [0, 1]) to RGB in [0, 255], ``[n, 3]``."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack([v, t, p], -1), np.stack([q, v, p], -1), np.stack([p, v, t], -1),
                      np.stack([p, q, v], -1), np.stack([t, p, v], -1), np.stack([v, p, q], -1)])
    return table[i, np.arange(len(h))] * 255.0
