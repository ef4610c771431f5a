"""Importer: Last.fm-2k (HetRec 2011) -> the tfvrec data set format."""
import os
import time

import numpy as np
import pandas as pd

from tfvrec.data.importers.raw import (_check_known, _drop_duplicates, _integral_as_int, _note, _numbers,
                                        _path, read_raw, _sorted_ids)
from tfvrec.data.importers.writing import _write

# Raised when a change here changes what the importer writes: cached imports of it are redone
# (`tfvrec.data.resolve.importer_version`).
VERSION = 1


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
