"""Importer: MovieLens posters -> the tfvrec data set format."""
import os
import time

import numpy as np
import pandas as pd

from tfvrec.data.importers.raw import _check_known, _drop_duplicates, _note, _numbers, _path, read_raw, _sorted_ids
from tfvrec.data.importers.writing import _write

# Raised when a change here changes what the importer writes: cached imports of it are redone
# (`tfvrec.data.resolve.importer_version`).
VERSION = 1


NO_GENRES = "(no genres listed)"


def import_movielens_posters(raw_dir, out_dir, overwrite=False, min_rating=4.0, only_with_poster=False):
    """MovieLens ml-latest-small (public training part) with real posters as item images.

    Derives: items = every movie of mls_movies.csv, tags = its genres, artist = its
    first genre (a coarse "style" for CuratorNet's artist-based sampling; none for
    "(no genres listed)"), image = absolute path of posters/<movieId>.jpg when that
    file exists (ML-1M ids, which match ml-latest-small ids), else empty.
    Interactions = ratings >= ``min_rating`` ("likes") with rating, timestamp and
    basket = user + UTC calendar day. Split: each user's last active day among the
    kept likes -> ``test`` for users with likes on >= 2 days (the same protocol the
    raw folder's curators used to hold out their own test part), the rest ``train``.
    post_tags = mls_tags.csv (user, movie, tag). Users = all users in ratings or tags.
    ``only_with_poster``: keep only movies with a poster (and their ratings and tags),
    for models that need an image, or image features, for every item.
    """
    min_rating = float(min_rating)
    started, notes = time.time(), []
    movies = read_raw(_path(raw_dir, "mls_movies.csv"), ("movieId", "genres"), ids=("movieId",), notes=notes)
    dup = movies.frame.duplicated(subset=["movieId"]).values
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise movies.error(row, f"movieId {movies['movieId'][row]!r} listed twice")
    ratings = read_raw(_path(raw_dir, "mls_ratings.csv"), ("userId", "movieId", "rating", "timestamp"),
                       ids=("userId", "movieId"), notes=notes)
    ratings.frame["rating"] = _numbers(ratings, "rating", "number")
    ratings.frame["timestamp"] = _numbers(ratings, "timestamp", "integer")
    _check_known(ratings, "movieId", movies["movieId"], "mls_movies.csv")
    ratings = _drop_duplicates(ratings, ("userId", "movieId", "timestamp"), "rating", notes)
    rating = ratings["rating"]
    tags = read_raw(_path(raw_dir, "mls_tags.csv"), ("userId", "movieId", "tag"), ids=("userId", "movieId"),
                    notes=notes)

    poster_dir = os.path.abspath(_path(raw_dir, "posters"))
    posters = set(os.listdir(poster_dir)) if os.path.isdir(poster_dir) else set()
    if not posters:
        _note(notes, f"{poster_dir}: no posters found; items have no images")
    movie_ids = movies["movieId"]
    has_poster = np.array([f"{m}.jpg" in posters for m in movie_ids], dtype=bool)
    image = np.where(has_poster, np.char.add(np.char.add(poster_dir + os.sep, movie_ids.astype(str)), ".jpg"), "")
    genres = [[] if g == NO_GENRES else [t for t in g.split("|") if t] for g in movies["genres"]]
    items = pd.DataFrame({"item": movie_ids, "artist": [g[0] if g else "" for g in genres],
                          "image": image, "tags": genres})
    if only_with_poster:
        items = items[has_poster].reset_index(drop=True)
        _note(notes, f"only_with_poster: kept the {len(items)} of {len(movie_ids)} movies with a poster, and "
                     f"the {int(pd.Series(ratings['movieId']).isin(items['item']).sum())} of {len(ratings)} ratings "
                     "on them")

    keep = (rating >= min_rating) & (pd.Series(ratings["movieId"]).isin(items["item"]).values)
    likes = pd.DataFrame({"user": ratings["userId"][keep], "item": ratings["movieId"][keep],
                          "timestamp": ratings["timestamp"][keep], "rating": rating[keep]})
    day = pd.to_datetime(likes["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%d").values
    likes["basket"] = likes["user"].values + "@" + day.astype(object)
    days_per_user = pd.Series(day).groupby(likes["user"].values).transform("nunique").values
    last_day = pd.Series(day).groupby(likes["user"].values).transform("max").values
    is_test = (days_per_user >= 2) & (day == last_day)
    train, test = likes[~is_test].reset_index(drop=True), likes[is_test].reset_index(drop=True)

    on_movie = pd.Series(tags["movieId"]).isin(items["item"]).values
    if not on_movie.all():
        _note(notes, f"mls_tags.csv: dropped {int((~on_movie).sum())} tag row(s) on movies missing from "
                     f"{'the movies with a poster' if only_with_poster else 'mls_movies.csv'} "
                     f"(first: line {int(tags.lines[~on_movie][0])})")
        tags = tags.take(on_movie)
    tags = _drop_duplicates(tags, ("userId", "movieId", "tag"), "tag", notes)
    post_tags = pd.DataFrame({"user": tags["userId"], "item": tags["movieId"], "tag": tags["tag"]})

    users = pd.DataFrame({"user": _sorted_ids(ratings["userId"], tags["userId"])})
    n_liked_posters = int(pd.Series(likes["item"].values).isin(movie_ids[has_poster]).sum())
    metadata = {
        "source": "MovieLens ml-latest-small (GroupLens; research-only licence), public training part, with "
                  f"ML-1M posters; raw folder {os.path.abspath(raw_dir)}",
        "options": {"min_rating": min_rating, "only_with_poster": bool(only_with_poster)},
        "derived": {
            "items": "mls_movies.csv, all movies; tags = genres; artist = first genre (none for "
                     f"'{NO_GENRES}'); image = absolute path of posters/<movieId>.jpg if present",
            "users": "userId values in mls_ratings.csv or mls_tags.csv",
            "interactions": f"ratings with rating >= {min_rating} (likes), keeping rating and timestamp; "
                            "basket = '<user>@<UTC day YYYY-MM-DD>'",
            "split": "test = likes on each user's last UTC day with likes, for users with likes on >= 2 days; "
                     "train = the rest",
            "post_tags": "mls_tags.csv (userId, movieId, tag) on known movies; tags kept verbatim (case-sensitive)",
        },
        "caveats": [
            "Per the raw README, mls_ratings.csv is already the training part of a last-active-day hold-out "
            "(95,073 of ml-latest-small's 100,836 ratings); this test split is a second hold-out inside it.",
            f"{len(users) - likes['user'].nunique()} user(s) have no rating >= {min_rating} (kept in users.tsv; "
            f"{int(pd.Series(test['user']).nunique())} users have a test day).",
            f"{int(has_poster.sum())} of {len(movie_ids)} movies have a poster; {n_liked_posters} of {len(likes)} "
            "likes are on movies with one. Posters exist for ML-1M movies absent from ml-latest-small too "
            "(ignored).",
            "image paths are absolute paths into the raw folder: the data set is not relocatable without them.",
            f"{int((~has_poster).sum())} items have no image; pixel models must restrict to items with one.",
            "artist = first genre is a proxy (movies have no artist in the data).",
        ],
    }
    return _write("movielens_posters", out_dir, overwrite, started, users, items,
                  {"train": train, "test": test} if len(test) else {"train": train}, metadata,
                  post_tags=post_tags, notes=notes)
