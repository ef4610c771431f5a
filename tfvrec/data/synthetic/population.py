"""Who is in the world: users' drivers, the items (creator, topic, style, appeal, artist), the
follow graph and each user's favourite artists."""
import numpy as np

from tfvrec import progress
from tfvrec.data.synthetic.config import DRIVERS
from tfvrec.data.synthetic.sampling import BLOCK_ROWS, heavy_tailed_counts, sample_rows

_ADMIRER_BOOST = 5.0  # creator-driven users lean this much more towards following creators


def draw_drivers(config, is_creator, rng):
    others = np.array([config.driver_visual, config.driver_social, 0.0, config.driver_creator])
    others = others / others.sum()
    driver = rng.choice(len(DRIVERS), size=len(is_creator), p=others)
    upload = is_creator & (rng.uniform(size=len(is_creator)) < config.driver_upload)
    driver[upload] = DRIVERS.index("upload")
    return driver


def make_items(config, taste, user_style, creators, rng):
    """Who uploaded each item, its topic, style, appeal and artist."""
    I, T, A = config.num_items, config.num_topics, config.num_artists
    # Every creator uploads at least once; beyond that, activity is heavy-tailed.
    activity = rng.lognormal(0, 1.0, size=len(creators))
    rest = rng.choice(creators, size=I - len(creators), p=activity / activity.sum())
    creator = rng.permutation(np.concatenate([creators, rest]))

    # Creators upload in their favourite topics (sharpened taste) near their own style.
    upload_taste = taste[creator] ** 2 + 1e-6
    topic = sample_rows(upload_taste, rng)
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


def make_follows(config, taste, is_creator, driver, rng):
    """(follower, followed) index arrays: homophilous, tilted to creators."""
    U = config.num_users
    unit = taste / np.linalg.norm(taste, axis=1, keepdims=True)
    counts = heavy_tailed_counts(rng, U, config.mean_follows_per_user, 0.7, 1, U - 1)
    creator_driven = driver == DRIVERS.index("creator")
    followers, followed = [], []
    for start in progress.bar(range(0, U, BLOCK_ROWS), desc="synthetic world", unit="block"):
        rows = np.arange(start, min(start + BLOCK_ROWS, U))
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


def favourite_artists(config, taste, items, rng):
    """``[num_users, favourite_artists]`` artist indices: artists with much work in the user's topics."""
    U, A = config.num_users, config.num_artists
    catalogue = np.zeros((config.num_topics, A))
    np.add.at(catalogue, (items["topic"], items["artist"]), 1.0)
    weight = taste @ catalogue + 1e-9  # expected liked works per artist under the user's taste
    keys = np.log(weight) + rng.gumbel(size=(U, A))
    return np.argsort(-keys, axis=1, kind="stable")[:, :config.favourite_artists]
