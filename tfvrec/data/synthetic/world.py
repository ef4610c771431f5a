"""The world assembled: `generate_world` in memory, `write_world` to disk, `load_truth` back.

Each generation step draws from its own random stream, keyed by the seed (`_STREAMS`), so the
same config gives the same bytes and changing how one step draws leaves the others unchanged.
"""
import os

import numpy as np
import pandas as pd

from tfvrec import input_files, outputs
from tfvrec.data.dataset import write_dataset
from tfvrec.data.synthetic.config import DRIVERS, SyntheticWorldConfig, recorded_fields
from tfvrec.data.synthetic.images import pixel_features, render_images
from tfvrec.data.synthetic.likes import make_likes, split_by_last_basket
from tfvrec.data.synthetic.population import draw_drivers, favourite_artists, make_follows, make_items
from tfvrec.data.synthetic.sampling import width
from tfvrec.data.synthetic.tags import draw_topic_words, make_groups, make_post_tags, make_vocab

TRUTH_FILE = "synthetic_truth.npz"

# One named random stream per generation step, so changing how one step draws
# leaves every other step's draws (and tables) unchanged.
_STREAMS = ("users", "drivers", "items", "look", "render", "follows", "likes", "social_likes",
            "baskets", "vocab", "post_tags", "groups", "loyalty")


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
    driver = draw_drivers(config, is_creator, rng["drivers"])

    items = make_items(config, taste, user_style, creators, rng["items"])
    pixels = render_images(config, items, rng["look"], rng["render"])
    vectors = pixel_features(pixels, config.feature_dim)

    follows = make_follows(config, taste, is_creator, driver, rng["follows"])
    favourites = favourite_artists(config, taste, items, rng["loyalty"])
    baskets, liked = make_likes(config, taste, user_style, driver, follows, items, favourites, rng["likes"],
                                rng["social_likes"], rng["baskets"])
    likes = [np.concatenate(b) if b else np.empty(0, np.int64) for b in baskets]
    splits = split_by_last_basket(liked)

    personal_vocab, topic_vocab, topic_word_weights = make_vocab(config, rng["vocab"])
    item_tags = draw_topic_words(items["topic"], config.tags_per_item, topic_vocab, topic_word_weights,
                                 rng["vocab"])
    post_tags = make_post_tags(config, likes, items, personal_vocab, topic_vocab, topic_word_weights,
                               rng["post_tags"])
    group_topic, memberships = make_groups(config, taste, rng["groups"])

    user_ids = np.array([f"u{u:0{width(U)}d}" for u in range(U)])
    item_ids = np.array([f"i{i:0{width(I)}d}" for i in range(I)])
    artist_ids = np.array([f"a{a:0{width(config.num_artists)}d}" for a in range(config.num_artists)])
    group_ids = np.array([f"g{g:0{width(config.num_groups)}d}" for g in range(config.num_groups)])

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
                     "config": recorded_fields(config)},
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
