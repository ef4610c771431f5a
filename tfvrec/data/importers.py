"""Importers: the four real data sets in ``../shared/data`` -> the tfvrec data set format.

Each importer reads one raw folder, derives the tfvrec tables (users, items,
interaction splits, social links, post tags), writes them with
`tfvrec.data.dataset.write_dataset` (atomic) and records in ``dataset.yaml`` where
the data came from, what was derived and how, and the caveats found on the way.

Raw ids are kept as the raw strings (never re-indexed), so any raw file of the
same source -- e.g. flickr_fs's held-out ``likes_val.tsv`` -- can be evaluated
directly against the imported data set's id space.

Raw-file problems (missing file, missing column, unparsable row, unresolvable id)
raise `DataError` naming the raw file, the line and the reason. Rows are dropped
only when the format forbids them (exact duplicates, tags on unknown artists), and
then always logged and counted in the metadata, never silently.

Use::

    from tfvrec.data.importers import import_dataset
    import_dataset("flickr_fs", "../shared/data/flickr_fs", "data/flickr_fs")

or ``python tools/import_dataset.py flickr_fs --raw ../shared/data/flickr_fs --out data/flickr_fs``.
"""
import csv
import inspect
import io
import os
import re
import time

import numpy as np
import pandas as pd
from absl import logging

from tfvrec import progress
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.data.errors import DataError

IMPORTER_VERSION = 1


# ----------------------------------------------------------------------------
# Raw-file reading
# ----------------------------------------------------------------------------

class _Raw:
    """One raw table as stripped strings, with the file line of every row (for error messages)."""

    def __init__(self, path, frame, lines):
        self.path = path
        self.frame = frame
        self.lines = lines  # int64 [len(frame)]: 1-based line in the raw file
        self.encoding = None

    def __len__(self):
        return len(self.frame)

    def __getitem__(self, column):
        return self.frame[column].values

    def error(self, row, reason):
        return DataError(self.path, reason, line=int(self.lines[row]))

    def take(self, mask):
        taken = _Raw(self.path, self.frame[mask].reset_index(drop=True), self.lines[mask])
        taken.encoding = self.encoding
        return taken


def _decode(path, encodings):
    with open(path, "rb") as f:
        data = f.read()
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            last = e
    # Name the line of the first undecodable byte for the last encoding tried.
    line = data.count(b"\n", 0, last.start) + 1
    raise DataError(path, f"not valid {'/'.join(encodings)} text: {last.reason} at byte {last.start}", line=line)


def _text_flags(text, sep, quoted):
    """Whether the text may hold values with whitespace, and whether it may hold empty fields.

    pandas' per-value string methods cost seconds on the 750k-row files. Plain substring
    tests on the whole text (C speed) tell when those passes cannot find anything -- the
    usual case for pure id tables -- so they are skipped. Anything unusual (non-ASCII,
    quoting) takes the thorough per-value path.
    """
    if not text.isascii() or (quoted and '"' in text):
        return True, True
    stray_space = (" " in text or "\x0b" in text or "\x0c" in text or (sep != "\t" and "\t" in text)
                   or text.count("\r") != text.count("\r\n"))
    body = text.replace("\r\n", "\n")
    maybe_empty = stray_space or any(
        (body.startswith(sep), body.startswith("\n"), body.endswith(sep),
         sep + sep in body, "\n" + sep in body, sep + "\n" in body, "\n\n" in body))
    return stray_space, maybe_empty


def read_raw(path, columns, ids=(), sep=None, encodings=("utf-8",), quoted=None, notes=None):
    """Read a raw table with a header line and keep ``columns`` (others are ignored).

    ``ids``: columns holding ids (non-empty, no whitespace). Blank lines are skipped
    (and noted); every other row keeps its raw line number so later checks can
    name it. ``quoted``: honour CSV quoting (default: for .csv files only; the
    tab-separated raw files are unquoted, and a stray ``"`` in a name must not
    swallow the following lines). Returns a `_Raw`.
    """
    if not os.path.exists(path):
        raise DataError(path, "raw file not found")
    if sep is None:
        sep = "," if path.endswith(".csv") else "\t"
    if quoted is None:
        quoted = sep == ","
    text, encoding = _decode(path, encodings)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    except pd.errors.EmptyDataError:
        raise DataError(path, f"file is empty; expected a header line with columns {list(columns)}") from None
    except pd.errors.ParserError as e:
        message = str(e).strip()
        match = re.search(r"line (\d+)", message)
        raise DataError(path, f"cannot parse row: {message.split('error: ')[-1]}",
                        line=int(match.group(1)) if match else None) from None
    stray_space, maybe_empty = _text_flags(text, sep, quoted)
    del text
    found = [c.strip() for c in frame.columns]
    frame.columns = found
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {found}, expected {list(columns)}", line=1)
    frame = frame[list(columns)]
    lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    if stray_space:
        for column in columns:
            frame[column] = frame[column].str.strip()
    blank = (frame == "").all(axis=1).values if maybe_empty else np.zeros(len(frame), dtype=bool)
    if blank.any():
        _note(notes, f"{os.path.basename(path)}: skipped {int(blank.sum())} blank line(s) "
                     f"(first: line {int(lines[blank][0])})")
        frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    raw = _Raw(path, frame, lines)
    for column in columns if maybe_empty else ():
        empty = np.flatnonzero(frame[column].values == "")
        if len(empty):
            raise raw.error(empty[0], f"empty value in column '{column}' (row has too few fields?)")
    for column in ids if stray_space else ():
        spaced = np.flatnonzero(frame[column].str.contains(r"\s", regex=True).values)
        if len(spaced):
            value = frame[column].iloc[spaced[0]]
            raise raw.error(spaced[0], f"id in column '{column}' contains whitespace: {value!r}")
    raw.encoding = encoding
    return raw


def _numbers(raw, column, kind):
    """Parse a column as finite integers/floats; DataError naming the first bad line."""
    values = pd.to_numeric(raw.frame[column], errors="coerce").astype(float).values
    bad = ~np.isfinite(values)
    if kind == "integer":
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise raw.error(row, f"column '{column}' must be a finite {kind}, got {raw.frame[column].iloc[row]!r}")
    return values.astype(np.int64) if kind == "integer" else values


def _check_known(raw, column, known, table):
    """Every id in ``column`` must be in ``known`` (array of ids); else DataError naming the first bad line."""
    unknown = ~pd.Series(raw[column]).isin(known).values
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise raw.error(row, f"{column} {raw[column][row]!r} is not in {table} "
                             f"({int(unknown.sum())} such rows in all)")


def _drop_duplicates(raw, columns, what, notes):
    """Drop exact repeats of ``columns`` (the format requires unique rows), noting how many and where."""
    dup = raw.frame.duplicated(subset=list(columns)).values
    if not dup.any():
        return raw
    row = int(np.flatnonzero(dup)[0])
    key = raw.frame.iloc[row][list(columns)]
    first = int(np.flatnonzero((raw.frame[list(columns)] == key).all(axis=1).values)[0])
    _note(notes, f"{os.path.basename(raw.path)}: dropped {int(dup.sum())} duplicate {what} row(s) "
                 f"(first: line {int(raw.lines[row])} repeats line {int(raw.lines[first])}, "
                 f"{tuple(str(v) for v in key)})")
    return raw.take(~dup)


def _note(notes, message):
    logging.warning("%s", message)
    if notes is not None:
        notes.append(message)


def _sorted_ids(*arrays):
    """Unique ids, numerically ordered when they are all integers (readable tables), else lexically."""
    ids = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    ids = np.asarray(ids, dtype=str)
    if len(ids) and pd.Series(ids).str.fullmatch(r"\d{1,18}").all():
        return ids[np.argsort(ids.astype(np.int64), kind="stable")]
    return np.sort(ids)


def _integral_as_int(values):
    """Whole-number floats as int64 (so 13883 is written as 13883, not 13883.0)."""
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def _path(raw_dir, name):
    return os.path.join(raw_dir, name)


# ----------------------------------------------------------------------------
# Writing + summary
# ----------------------------------------------------------------------------

def _write(name, out_dir, overwrite, started, users, items, interactions, metadata,
           social=None, post_tags=None, notes=()):
    counts = {"users": len(users), "items": len(items)}
    counts.update({split: len(frame) for split, frame in interactions.items()})
    if social is not None:
        counts["social"] = len(social)
    if post_tags is not None:
        counts["post_tags"] = len(post_tags)
    metadata = dict(name=name, **metadata)
    metadata["counts"] = counts
    if notes:
        metadata["import_log"] = list(notes)
    metadata["importer"] = {"module": __name__, "version": IMPORTER_VERSION}
    path = write_dataset(out_dir, users, items, interactions, social=social, post_tags=post_tags,
                         metadata=metadata, overwrite=overwrite)
    logging.info("imported %s -> %s: %s (%.1f s)", name, path,
                 ", ".join(f"{k} {v:,}" for k, v in counts.items()), time.time() - started)
    return path


# ----------------------------------------------------------------------------
# flickr_fs
# ----------------------------------------------------------------------------

def import_flickr_fs(raw_dir, out_dir, overwrite=False):
    """HASC's Flickr "F.S" data set, with its own train/validation split.

    Derives: users = every id in likes, follows (both ends) and uploads (uploaders
    are users, so ``items.creator`` = uploader and HASC's creator aspect resolves);
    items = every item in likes or uploads; ``train`` = likes_train.tsv;
    ``validation`` = likes_val.tsv (one held-out like per user); social = follows.tsv.
    There is no test split: the raw folder has no test likes (the paper counts
    761,812 likes; train + validation hold ~4.4k fewer, about one per user).
    """
    started, notes = time.time(), []
    train = read_raw(_path(raw_dir, "likes_train.tsv"), ("user", "item"), ids=("user", "item"), notes=notes)
    val = read_raw(_path(raw_dir, "likes_val.tsv"), ("user", "item"), ids=("user", "item"), notes=notes)
    follows = read_raw(_path(raw_dir, "follows.tsv"), ("user", "followed"), ids=("user", "followed"), notes=notes)
    uploads = read_raw(_path(raw_dir, "uploads.tsv"), ("item", "uploader"), ids=("item", "uploader"), notes=notes)

    train = _drop_duplicates(train, ("user", "item"), "like", notes)
    val = _drop_duplicates(val, ("user", "item"), "like", notes)
    follows = _drop_duplicates(follows, ("user", "followed"), "follow", notes)
    uploads = _drop_duplicates(uploads, ("item", "uploader"), "upload", notes)
    # An image has one uploader; two different ones means the file is corrupt, not something to pick from.
    conflict = uploads.frame.duplicated(subset=["item"]).values
    if conflict.any():
        row = int(np.flatnonzero(conflict)[0])
        raise uploads.error(row, f"item {uploads['item'][row]!r} has a second, different uploader")

    users = _sorted_ids(train["user"], val["user"], follows["user"], follows["followed"], uploads["uploader"])
    item_ids = _sorted_ids(train["item"], val["item"], uploads["item"])
    creator = pd.Series(uploads["uploader"], index=uploads["item"]).reindex(item_ids).fillna("").values
    leaked = pd.MultiIndex.from_arrays([val["user"], val["item"]]).isin(
        pd.MultiIndex.from_arrays([train["user"], train["item"]]))
    if leaked.any():
        _note(notes, f"likes_val.tsv: {int(leaked.sum())} validation like(s) also appear in likes_train.tsv "
                     f"(kept in both; first: line {int(val.lines[leaked][0])})")
    self_follows = int((follows["user"] == follows["followed"]).sum())

    metadata = {
        "source": "HASC paper (Wu et al.), Flickr F.S data set with the authors' own split and re-indexed ids; "
                  f"raw folder {os.path.abspath(raw_dir)}",
        "derived": {
            "users": "union of ids in likes_train, likes_val, follows (both columns) and uploads.uploader",
            "items": "union of items in likes_train, likes_val and uploads",
            "items.creator": "uploads.tsv uploader (uploaders are users)",
            "interactions/train": "likes_train.tsv",
            "interactions/validation": "likes_val.tsv (the authors' held-out like, one per user)",
            "social": "follows.tsv (user follows followed)",
        },
        "caveats": [
            f"No test split: the raw folder has no test likes (the paper counts 761,812 likes, train + "
            f"validation here hold {len(train) + len(val):,}); evaluate on validation.",
            "No image features or pixels (never published): HASC runs without the visual term.",
            "Ids are the authors' re-indexed integers kept as strings; raw likes_val.tsv rows resolve directly.",
            f"Items without an uploader (so without creator): {int((creator == '').sum())}.",
            f"Self-follow links: {self_follows}.",
        ],
    }
    items = pd.DataFrame({"item": item_ids, "creator": creator})
    return _write("flickr_fs", out_dir, overwrite, started, pd.DataFrame({"user": users}), items,
                  {"train": train.frame[["user", "item"]], "validation": val.frame[["user", "item"]]},
                  metadata, social=follows.frame[["user", "followed"]], notes=notes)


# ----------------------------------------------------------------------------
# ugallery
# ----------------------------------------------------------------------------

def import_ugallery(raw_dir, out_dir, overwrite=False, holdout="last_basket"):
    """UGallery art purchases (CuratorNet's data set), public training part + full catalogue.

    Derives: items = items.csv (all 6,030 items with their artist, so evaluation can
    rank the whole catalogue); users = buyers in purchases_train.csv; interactions
    keep ``timestamp`` and ``basket`` = user + timestamp (a basket is what one user
    bought at one instant). The real held-out baskets were never published, so with
    ``holdout="last_basket"`` the last basket of each user with >= 2 baskets becomes
    ``test`` (CuratorNet's protocol, re-applied to the public part), the rest
    ``train``; ``holdout="none"`` keeps everything in ``train``.
    """
    if holdout not in ("last_basket", "none"):
        raise _option_error(f"ugallery: option holdout must be 'last_basket' or 'none', got {holdout!r}")
    started, notes = time.time(), []
    catalogue = read_raw(_path(raw_dir, "items.csv"), ("item_id", "artist_id"), ids=("item_id", "artist_id"),
                         notes=notes)
    dup = catalogue.frame.duplicated(subset=["item_id"]).values
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise catalogue.error(row, f"item {catalogue['item_id'][row]!r} listed twice in the catalogue")
    buys = read_raw(_path(raw_dir, "purchases_train.csv"), ("user_id", "item_id", "artist_id", "timestamp"),
                    ids=("user_id", "item_id", "artist_id"), notes=notes)
    timestamp = _numbers(buys, "timestamp", "integer")
    _check_known(buys, "item_id", catalogue["item_id"], "items.csv")
    artist_of = pd.Series(catalogue["artist_id"], index=catalogue["item_id"])
    mismatch = artist_of.reindex(buys["item_id"]).values != buys["artist_id"]
    if mismatch.any():
        row = int(np.flatnonzero(mismatch)[0])
        raise buys.error(row, f"artist {buys['artist_id'][row]!r} of item {buys['item_id'][row]!r} differs from "
                              f"items.csv ({artist_of[buys['item_id'][row]]!r})")
    buys.frame["timestamp"] = timestamp
    buys = _drop_duplicates(buys, ("user_id", "item_id", "timestamp"), "purchase", notes)

    frame = pd.DataFrame({"user": buys["user_id"], "item": buys["item_id"], "timestamp": buys["timestamp"]})
    frame["basket"] = frame["user"] + "@" + frame["timestamp"].astype(str)
    baskets_per_user = frame.groupby("user")["timestamp"].transform("nunique").values
    last = frame.groupby("user")["timestamp"].transform("max").values
    is_test = (baskets_per_user >= 2) & (frame["timestamp"].values == last)
    if holdout == "none":
        is_test[:] = False
    interactions = {"train": frame[~is_test].reset_index(drop=True)}
    caveats = [
        "The real held-out baskets were never published; purchases_train.csv is only the public training part.",
        "No image embeddings (never published openly): item content is the artist only.",
        "Artists are not platform users: items have an artist, no creator.",
    ]
    if is_test.any():
        test = frame[is_test].reset_index(drop=True)
        interactions["test"] = test
        unseen = ~test["item"].isin(interactions["train"]["item"]).values
        caveats.append(
            f"test = last basket of the {test['user'].nunique()} users with >= 2 baskets, carved out of the public "
            f"training part (a second hold-out, not the paper's test set); {unseen.mean():.1%} of test rows are "
            f"items never bought in train (the paper reports ~90% for its own test).")
    counts = frame["item"].value_counts()
    caveats.append(f"Items are not all one-of-a-kind: {int((counts > 1).sum())} items were bought more than once "
                   f"(up to {int(counts.max())} times, item {counts.index[0]}), and "
                   f"{int(frame.duplicated(subset=['user', 'item']).sum())} purchases repeat a user's earlier item "
                   "at another time (kept: different baskets).")
    metadata = {
        "source": f"UGallery purchases as released with CuratorNet (Cartagena et al.); raw folder "
                  f"{os.path.abspath(raw_dir)}",
        "options": {"holdout": holdout},
        "derived": {
            "items": "items.csv (item_id -> item, artist_id -> artist); the whole catalogue",
            "users": "user_id values in purchases_train.csv",
            "interactions": "purchases_train.csv with timestamp; basket = '<user>@<timestamp>'",
            "split": ("test = every row of the last basket (max timestamp) of each user with >= 2 distinct "
                      "timestamps; train = the rest" if holdout == "last_basket" else "all in train"),
        },
        "caveats": caveats,
    }
    users = pd.DataFrame({"user": _sorted_ids(frame["user"].values)})
    items = pd.DataFrame({"item": catalogue["item_id"], "artist": catalogue["artist_id"]})
    return _write("ugallery", out_dir, overwrite, started, users, items, interactions, metadata, notes=notes)


# ----------------------------------------------------------------------------
# movielens_posters
# ----------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------
# lastfm_2k
# ----------------------------------------------------------------------------

def import_lastfm_2k(raw_dir, out_dir, overwrite=False, encoding="auto"):
    """HetRec 2011 Last.fm-2k: listening counts, friendships and personal tags on artists.

    Derives: users = user ids in any file; items = artists.dat (no images, no
    creator); ``train`` = user_artists.dat with ``rating`` = listening weight (no
    timestamps, so no split); social = user_friends.dat as given (it already lists
    both directions); post_tags = user_taggedartists.dat with the tag *name* from
    tags.dat (a tag's meaning is its text). Tag rows on artists missing from
    artists.dat are dropped and counted -- they cannot resolve to an item.

    ``encoding="auto"`` decodes each file as UTF-8 when it is valid UTF-8, else as
    latin-1: the release is documented as latin-1, but artists.dat is UTF-8.
    """
    encodings = ("utf-8", "latin-1") if encoding == "auto" else (encoding,)
    started, notes = time.time(), []

    def read(name, columns, ids):
        raw = read_raw(_path(raw_dir, name), columns, ids=ids, sep="\t", encodings=encodings, notes=notes)
        used[name] = raw.encoding
        return raw

    used = {}
    artists = read("artists.dat", ("id",), ("id",))
    dup = artists.frame.duplicated().values
    if dup.any():
        raise artists.error(int(np.flatnonzero(dup)[0]), f"artist id {artists['id'][np.flatnonzero(dup)[0]]!r} "
                                                         "listed twice")
    tag_names = read("tags.dat", ("tagID", "tagValue"), ("tagID",))
    if tag_names.frame.duplicated(subset=["tagID"]).any():
        row = int(np.flatnonzero(tag_names.frame.duplicated(subset=["tagID"]).values)[0])
        raise tag_names.error(row, f"tagID {tag_names['tagID'][row]!r} listed twice")
    listens = read("user_artists.dat", ("userID", "artistID", "weight"), ("userID", "artistID"))
    friends = read("user_friends.dat", ("userID", "friendID"), ("userID", "friendID"))
    tagged = read("user_taggedartists.dat", ("userID", "artistID", "tagID"), ("userID", "artistID", "tagID"))

    listens.frame["weight"] = _numbers(listens, "weight", "number")
    _check_known(listens, "artistID", artists["id"], "artists.dat")
    listens = _drop_duplicates(listens, ("userID", "artistID"), "listening", notes)
    friends = _drop_duplicates(friends, ("userID", "friendID"), "friendship", notes)
    _check_known(tagged, "tagID", tag_names["tagID"], "tags.dat")
    users = _sorted_ids(listens["userID"], friends["userID"], friends["friendID"], tagged["userID"])

    known_artist = pd.Series(tagged["artistID"]).isin(artists["id"]).values
    n_unknown = int((~known_artist).sum())
    if n_unknown:
        _note(notes, f"user_taggedartists.dat: dropped {n_unknown} tag assignment(s) on artists missing from "
                     f"artists.dat ({pd.Series(tagged['artistID'][~known_artist]).nunique()} distinct artist ids; "
                     f"first: line {int(tagged.lines[~known_artist][0])})")
        tagged = tagged.take(known_artist)
    name_of = pd.Series(tag_names["tagValue"], index=tag_names["tagID"])
    tagged.frame["tag"] = name_of.reindex(tagged["tagID"]).values
    # Distinct tag ids can share a name; as text they are the same tag, so one row remains.
    tagged = _drop_duplicates(tagged, ("userID", "artistID", "tag"), "tag assignment (same tag name)", notes)
    asymmetric = ~pd.MultiIndex.from_arrays([friends["friendID"], friends["userID"]]).isin(
        pd.MultiIndex.from_arrays([friends["userID"], friends["friendID"]]))

    metadata = {
        "source": "HetRec 2011 Last.fm-2k (GroupLens / Last.fm; research-only); raw folder "
                  f"{os.path.abspath(raw_dir)}",
        "options": {"encoding": encoding},
        "file_encodings": used,
        "derived": {
            "users": "union of user ids in user_artists, user_friends (both columns), user_taggedartists",
            "items": "artists.dat ids (names/urls not carried: the format has no name column)",
            "interactions/train": "user_artists.dat; rating = listening weight (play count); no split",
            "social": "user_friends.dat as given (user -> friend; both directions are listed)",
            "post_tags": "user_taggedartists.dat (userID, artistID, tagID -> tags.dat tagValue)",
        },
        "caveats": [
            f"{n_unknown} tag assignments reference artists missing from artists.dat and were dropped.",
            f"Friend links without their reverse: {int(asymmetric.sum())}.",
            "Tag assignment dates (day/month/year) are not carried: post_tags has no time column.",
            "No images; rating is an unbounded play count (heavy-tailed), not a 1-5 score.",
        ],
    }
    items = pd.DataFrame({"item": artists["id"]})
    train = pd.DataFrame({"user": listens["userID"], "item": listens["artistID"],
                          "rating": _integral_as_int(listens["weight"])})
    post_tags = pd.DataFrame({"user": tagged["userID"], "item": tagged["artistID"], "tag": tagged["tag"]})
    return _write("lastfm_2k", out_dir, overwrite, started, pd.DataFrame({"user": users}), items,
                  {"train": train}, metadata,
                  social=pd.DataFrame({"user": friends["userID"], "followed": friends["friendID"]}),
                  post_tags=post_tags, notes=notes)


# ----------------------------------------------------------------------------
# Registry, entry point, CLI glue
# ----------------------------------------------------------------------------

IMPORTERS = {
    "flickr_fs": import_flickr_fs,
    "ugallery": import_ugallery,
    "movielens_posters": import_movielens_posters,
    "lastfm_2k": import_lastfm_2k,
}


def importer_options(name):
    """``{option: default}`` accepted by importer ``name``."""
    params = inspect.signature(IMPORTERS[name]).parameters
    return {k: p.default for k, p in params.items() if k not in ("raw_dir", "out_dir", "overwrite")}


def _option_error(message):
    """Bad importer name/options come from a config or the command line: a `ConfigError` (a ValueError)."""
    from tfvrec.errors import ConfigError
    return ConfigError(message)


def _coerce(name, key, value, default):
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return type(default)(value)
    except ValueError:
        raise _option_error(f"{name}: option {key}={value!r} must be a {type(default).__name__}") from None


def import_dataset(name, raw_dir, out_dir, overwrite=False, **options) -> str:
    """Import raw data set ``name`` from ``raw_dir`` into a tfvrec data set at ``out_dir``; returns its path.

    ``options`` are importer specific (see `importer_options`); string values (from
    the command line) are converted to the default's type. The written directory
    is loaded back once with `load_dataset`, so an importer bug surfaces here and
    not in a training run.
    """
    if name not in IMPORTERS:
        raise _option_error(f"unknown data set {name!r}; importers exist for {sorted(IMPORTERS)}")
    if not os.path.isdir(raw_dir):
        raise DataError(raw_dir, f"raw {name} folder not found")
    accepted = importer_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise _option_error(f"{name}: unknown option(s) {unknown}; valid options: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in accepted.items()) or 'none'}")
    options = {k: _coerce(name, k, v, accepted[k]) for k, v in options.items()}
    with progress.bar(total=2, desc=f"importing {name}", unit="step") as bar:
        path = IMPORTERS[name](raw_dir, out_dir, overwrite=overwrite, **options)
        bar.update()
        load_dataset(path)
        bar.update()
    return path


def parse_options(pairs):
    """``["k=v", ...]`` -> ``{k: v}`` (values stay strings; `import_dataset` converts them)."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _option_error(f"--option expects key=value, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def add_import_arguments(parser):
    """Add the import arguments to an argparse parser (shared by tools/import_dataset.py and the CLI)."""
    parser.add_argument("name", choices=sorted(IMPORTERS), help="raw data set to import")
    parser.add_argument("--raw", required=True, help="raw data folder, e.g. ../shared/data/<name>")
    parser.add_argument("--out", required=True, help="output tfvrec data set directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="importer option, repeatable (ugallery: holdout=last_basket|none; "
                             "movielens_posters: min_rating=4.0; lastfm_2k: encoding=auto)")
    return parser


def run_import(args):
    """Run an import from parsed `add_import_arguments` args; returns the written path."""
    path = import_dataset(args.name, args.raw, args.out, overwrite=args.overwrite, **parse_options(args.option))
    print(path)
    return path
