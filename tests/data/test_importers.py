"""Importers: tiny fake raw folders (always run) and the four real data sets (skip when absent).

Real data lives outside the repo in ``<repo>/../shared/data`` (override with
``TFVREC_SHARED_DATA``). Expected counts come from its README, or are recomputed
here from the raw files independently of the importer code.
"""
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from tfvrec.data.dataset import load_dataset, read_interactions
from tfvrec.data.errors import DataError
from tfvrec.data.importers import IMPORTERS, import_dataset, importer_options

from conftest import REPO, SHARED_DATA


def _write(folder, name, text, encoding="utf-8"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding=encoding, newline="") as f:
        f.write(text)


def _metadata(path):
    with open(os.path.join(path, "dataset.yaml")) as f:
        return yaml.safe_load(f)


# ----------------------------------------------------------------------------
# Fake raw folders
# ----------------------------------------------------------------------------

def _fake_flickr(folder, likes_train="user\titem\n0\t10\n0\t11\n1\t10\n2\t12\n"):
    _write(folder, "likes_train.tsv", likes_train)
    _write(folder, "likes_val.tsv", "user\titem\n0\t12\n1\t11\n")
    _write(folder, "follows.tsv", "user\tfollowed\n0\t1\n1\t2\n0\t1\n")
    _write(folder, "uploads.tsv", "item\tuploader\n10\t2\n11\t3\n12\t2\n")
    return str(folder)


def test_flickr_fake_import_derives_users_items_and_splits(tmp_path):
    raw = _fake_flickr(tmp_path / "raw")
    path = import_dataset("flickr_fs", raw, tmp_path / "out")
    ds = load_dataset(path)
    assert list(ds.user_ids) == ["0", "1", "2", "3"]  # uploader 3 never likes anything but is a user
    assert list(ds.item_ids) == ["10", "11", "12"]
    assert list(ds.user_ids[ds.item_creator]) == ["2", "3", "2"]
    assert len(ds.split("train")) == 4 and len(ds.split("validation")) == 2 and "test" not in ds.interactions
    assert len(ds.social) == 2  # the repeated follow is dropped ...
    meta = _metadata(path)
    assert any("follows.tsv: dropped 1 duplicate" in n and "line 4" in n for n in meta["import_log"])  # ... loudly
    assert meta["counts"] == {"users": 4, "items": 3, "train": 4, "validation": 2, "social": 2}
    assert meta["source"] and meta["derived"] and meta["caveats"]
    # The raw held-out file is directly evaluable in the imported id space.
    val = read_interactions(os.path.join(raw, "likes_val.tsv"), ds)
    assert list(ds.item_ids[val["item"]]) == ["12", "11"]


def test_flickr_missing_column_names_the_file(tmp_path):
    raw = _fake_flickr(tmp_path / "raw", likes_train="user\tphoto\n0\t10\n")
    with pytest.raises(DataError, match=r"likes_train\.tsv, line 1: missing column\(s\) \['item'\]"):
        import_dataset("flickr_fs", raw, tmp_path / "out")
    assert not os.path.exists(tmp_path / "out")


def test_flickr_unparsable_line_gives_its_number(tmp_path):
    raw = _fake_flickr(tmp_path / "raw", likes_train="user\titem\n0\t10\n1\t10\n2\t12\t99\n")
    with pytest.raises(DataError, match=r"likes_train\.tsv, line 4: cannot parse row"):
        import_dataset("flickr_fs", raw, tmp_path / "out")


def test_flickr_short_row_and_blank_lines_keep_line_numbers(tmp_path):
    # The blank line 3 is skipped, but the short row is still reported at its real line (5).
    raw = _fake_flickr(tmp_path / "raw", likes_train="user\titem\r\n0\t10\r\n\r\n1\t10\r\n2\r\n")
    with pytest.raises(DataError, match=r"likes_train\.tsv, line 5: empty value in column 'item'"):
        import_dataset("flickr_fs", raw, tmp_path / "out")


def test_flickr_id_with_space_is_rejected(tmp_path):
    raw = _fake_flickr(tmp_path / "raw", likes_train="user\titem\n0\t10\n0\t1 1\n")
    with pytest.raises(DataError, match=r"likes_train\.tsv, line 3: id in column 'item' contains whitespace"):
        import_dataset("flickr_fs", raw, tmp_path / "out")


def test_missing_raw_file_is_named(tmp_path):
    raw = _fake_flickr(tmp_path / "raw")
    os.remove(os.path.join(raw, "uploads.tsv"))
    with pytest.raises(DataError, match=r"uploads\.tsv: raw file not found"):
        import_dataset("flickr_fs", raw, tmp_path / "out")


def test_flickr_conflicting_uploaders_rejected(tmp_path):
    raw = _fake_flickr(tmp_path / "raw")
    _write(raw, "uploads.tsv", "item\tuploader\n10\t2\n11\t3\n10\t1\n")
    with pytest.raises(DataError, match=r"uploads\.tsv, line 4: item '10' has a second, different uploader"):
        import_dataset("flickr_fs", raw, tmp_path / "out")


def test_import_dataset_argument_errors(tmp_path):
    raw = _fake_flickr(tmp_path / "raw")
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        import_dataset("nope", raw, tmp_path / "out")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['holdout'\]"):
        import_dataset("flickr_fs", raw, tmp_path / "out", holdout="none")
    with pytest.raises(DataError, match="raw flickr_fs folder not found"):
        import_dataset("flickr_fs", tmp_path / "absent", tmp_path / "out")
    import_dataset("flickr_fs", raw, tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        import_dataset("flickr_fs", raw, tmp_path / "out")
    import_dataset("flickr_fs", raw, tmp_path / "out", overwrite=True)
    assert importer_options("movielens_posters") == {"min_rating": 4.0, "only_with_poster": False}
    assert set(IMPORTERS) == {"flickr_fs", "ugallery", "movielens_posters", "lastfm_2k"}


def _fake_ugallery(folder):
    _write(folder, "items.csv", "item_id,artist_id\n1,a\n2,a\n3,b\n4,c\n5,c\n")
    _write(folder, "purchases_train.csv",
           "user_id,item_id,artist_id,timestamp\n"
           "u1,1,a,100\nu1,2,a,100\nu1,3,b,200\nu1,4,c,200\n"  # two baskets -> the 200 basket is test
           "u2,1,a,50\n"  # one basket -> train only
           "u3,5,c,10\nu3,3,b,20\n")
    return str(folder)


def test_ugallery_fake_last_basket_holdout(tmp_path):
    raw = _fake_ugallery(tmp_path / "raw")
    ds = load_dataset(import_dataset("ugallery", raw, tmp_path / "out"))
    test = ds.split("test")
    assert sorted(zip(ds.user_ids[test["user"]], ds.item_ids[test["item"]])) == [("u1", "3"), ("u1", "4"), ("u3", "3")]
    assert set(test["basket"]) == {"u1@200", "u3@20"}
    assert len(ds.split("train")) == 4 and ds.num_items == 5 and len(ds.artist_ids) == 3
    none = load_dataset(import_dataset("ugallery", raw, tmp_path / "all", holdout="none"))
    assert len(none.split("train")) == 7 and "test" not in none.interactions


def test_ugallery_bad_rows(tmp_path):
    raw = _fake_ugallery(tmp_path / "raw")
    _write(raw, "purchases_train.csv", "user_id,item_id,artist_id,timestamp\nu1,1,a,100\nu1,2,a,soon\n")
    with pytest.raises(DataError, match=r"purchases_train\.csv, line 3: column 'timestamp' must be a finite integer"):
        import_dataset("ugallery", raw, tmp_path / "out")
    _write(raw, "purchases_train.csv", "user_id,item_id,artist_id,timestamp\nu1,1,b,100\n")
    with pytest.raises(DataError, match=r"purchases_train\.csv, line 2: artist 'b' of item '1' differs"):
        import_dataset("ugallery", raw, tmp_path / "out")
    _write(raw, "purchases_train.csv", "user_id,item_id,artist_id,timestamp\nu1,1,a,100\nu1,9,a,100\n")
    with pytest.raises(DataError, match=r"purchases_train\.csv, line 3: item_id '9' is not in items\.csv"):
        import_dataset("ugallery", raw, tmp_path / "out")
    with pytest.raises(ValueError, match="holdout must be"):
        import_dataset("ugallery", _fake_ugallery(tmp_path / "raw2"), tmp_path / "out", holdout="random")


def test_movielens_fake_likes_days_tags_and_posters(tmp_path):
    raw = tmp_path / "raw"
    _write(raw, "mls_movies.csv", 'movieId,title,genres\n1,"Toy, Story (1995)",Animation|Comedy\n'
                                  "2,B (1990),Drama\n3,C (2000),(no genres listed)\n")
    day1, day2 = 86400 * 100 + 5, 86400 * 101 + 5
    _write(raw, "mls_ratings.csv", "userId,movieId,rating,timestamp\n"
                                   f"1,1,4.0,{day1}\n1,2,5.0,{day2}\n1,3,4.5,{day2 + 60}\n1,3,2.0,{day1}\n"
                                   f"2,1,3.5,{day1}\n3,2,4.0,{day1}\n")
    _write(raw, "mls_tags.csv", 'userId,movieId,tag,timestamp\n4,1,funny,1\n4,1,"""artsy""",2\n4,99,gone,3\n')
    os.makedirs(raw / "posters")
    (raw / "posters" / "2.jpg").write_bytes(b"\xff\xd8")
    path = import_dataset("movielens_posters", str(raw), tmp_path / "out", min_rating="4")  # CLI-style string
    ds = load_dataset(path)
    assert list(ds.user_ids) == ["1", "2", "3", "4"]  # 2 has no like, 4 only tags: both still users
    assert ds.item_tags[0] == ["Animation", "Comedy"] and ds.item_tags[2] == []
    assert list(ds.artist_ids[ds.item_artist[:2]]) == ["Animation", "Drama"] and ds.item_artist[2] == -1
    assert list(ds.item_image) == ["", str(raw / "posters" / "2.jpg"), ""]
    test, train = ds.split("test"), ds.split("train")
    assert sorted(ds.item_ids[test["item"]]) == ["2", "3"] and set(ds.user_ids[test["user"]]) == {"1"}
    assert len(train) == 2 and set(train["rating"]) == {4.0}  # user 3 liked on one day only: all train
    assert set(test["basket"]) == {"1@1970-04-12"}
    assert sorted(ds.tag_ids[ds.post_tags["tag"]]) == ['"artsy"', "funny"]
    assert any("dropped 1 tag row" in n for n in _metadata(path)["import_log"])


def test_lastfm_fake_encodings_tag_names_and_dropped_tags(tmp_path):
    raw = tmp_path / "raw"
    _write(raw, "artists.dat", "id\tname\turl\tpictureURL\n1\tBjörk\tu\tp\n2\t\"Weird\tu\tp\n", encoding="utf-8")
    _write(raw, "tags.dat", "tagID\ttagValue\r\n1\tcafé\r\n2\trock\r\n", encoding="latin-1")
    _write(raw, "user_artists.dat", "userID\tartistID\tweight\n2\t1\t120\n3\t2\t7\n")
    _write(raw, "user_friends.dat", "userID\tfriendID\n2\t5\n5\t2\n")
    _write(raw, "user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear\n"
                                          "2\t1\t1\t1\t1\t2009\n\n6\t1\t2\t1\t1\t2009\n6\t77\t2\t1\t1\t2009\n")
    path = import_dataset("lastfm_2k", str(raw), tmp_path / "out")
    ds = load_dataset(path)
    assert list(ds.user_ids) == ["2", "3", "5", "6"]
    assert list(ds.split("train")["rating"]) == [120.0, 7.0]
    assert len(ds.social) == 2
    assert sorted(ds.tag_ids) == ["café", "rock"] and len(ds.post_tags) == 2
    meta = _metadata(path)
    assert meta["file_encodings"]["tags.dat"] == "latin-1" and meta["file_encodings"]["artists.dat"] == "utf-8"
    log = "\n".join(meta["import_log"])
    assert "dropped 1 tag assignment(s) on artists missing" in log and "line 5" in log
    assert "skipped 1 blank line" in log
    _write(raw, "user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t1\t9\t1\t1\t2009\n")
    with pytest.raises(DataError, match=r"user_taggedartists\.dat, line 2: tagID '9' is not in tags\.dat"):
        import_dataset("lastfm_2k", str(raw), tmp_path / "out2")


def test_command_line_script(tmp_path, capsys):
    import importlib.util
    script = os.path.join(REPO, "tools", "import_dataset.py")
    spec = importlib.util.spec_from_file_location("import_dataset_tool", script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    raw = _fake_ugallery(tmp_path / "raw")
    assert tool.main(["ugallery", "--raw", raw, "--out", str(tmp_path / "out"), "--option", "holdout=none"]) == 0
    assert "test" not in load_dataset(tmp_path / "out").interactions
    assert tool.main(["ugallery", "--raw", raw, "--out", str(tmp_path / "out"), "--option", "holdout"]) == 2
    assert "--option expects key=value" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Real data sets
# ----------------------------------------------------------------------------

def _raw_dir(name):
    folder = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(folder):
        pytest.skip(f"real data set {name!r} not available at {os.path.abspath(folder)} "
                    "(set TFVREC_SHARED_DATA to the shared data folder)")
    return folder


def _import_real(name, tmp_path, **options):
    path = IMPORTERS[name](_raw_dir(name), str(tmp_path / name), **options)
    return load_dataset(path), _metadata(path)


def test_real_flickr_fs(tmp_path):
    ds, meta = _import_real("flickr_fs", tmp_path)
    # Published counts (raw README / HASC paper).
    assert ds.num_users == 4418 and ds.num_items == 31460
    assert len(ds.split("train")) == 752948 and len(ds.split("validation")) == 4418
    # README: 184,991 follow links = raw rows; one row is an exact repeat, which the format forbids.
    assert len(ds.social) == 184990
    assert any("follows.tsv: dropped 1 duplicate" in n for n in meta["import_log"])
    assert (ds.item_creator >= 0).all()
    assert "test" not in ds.interactions
    val = read_interactions(os.path.join(_raw_dir("flickr_fs"), "likes_val.tsv"), ds)
    assert len(val) == 4418 and val["user"].nunique() == 4418


def test_real_ugallery(tmp_path):
    ds, meta = _import_real("ugallery", tmp_path)
    assert ds.num_items == 6030 and len(ds.artist_ids) == 685 and ds.num_users == 2919
    train, test = ds.split("train"), ds.split("test")
    assert len(train) + len(test) == 5581
    raw = pd.read_csv(os.path.join(_raw_dir("ugallery"), "purchases_train.csv"), dtype=str)
    baskets = raw.groupby("user_id")["timestamp"].nunique()
    assert test["user"].nunique() == int((baskets >= 2).sum())  # 338
    assert test.groupby("user")["basket"].nunique().eq(1).all()
    last = pd.concat([train, test]).groupby("user")["timestamp"].max()
    assert (test["timestamp"].values == last.reindex(test["user"]).values).all()
    assert meta["counts"]["test"] == len(test)


def test_real_movielens_posters(tmp_path):
    ds, meta = _import_real("movielens_posters", tmp_path)
    assert ds.num_users == 610 and ds.num_items == 9742
    raw = pd.read_csv(os.path.join(_raw_dir("movielens_posters"), "mls_ratings.csv"))
    likes = raw[raw["rating"] >= 4.0]
    train, test = ds.split("train"), ds.split("test")
    # This copy: every rating and tag of the newly arrived posters removed (README), 45,662 -> 42,343 likes.
    assert len(train) + len(test) == len(likes) == 42343
    day = pd.to_datetime(likes["timestamp"], unit="s", utc=True).dt.date
    assert test["user"].nunique() == int((day.groupby(likes["userId"]).nunique() >= 2).sum())
    with_image = ds.item_image != ""
    assert with_image.sum() == 2947  # the posters (3,872, ML-1M ids) of movies that are in ml-latest-small
    assert all(os.path.isabs(p) and os.path.exists(p) for p in ds.item_image[with_image][:50])
    assert len(ds.post_tags) == 3499  # (3,683 before the new posters' tags were removed)
    assert ds.item_tags[0] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]


def _raw_posters(raw_dir):
    """From the raw files alone: (ids of ml-latest-small movies with a poster but no rating and no tag,
    ids of movies with a poster but no like)."""
    movies = pd.read_csv(os.path.join(raw_dir, "mls_movies.csv"), dtype=str)
    ratings = pd.read_csv(os.path.join(raw_dir, "mls_ratings.csv"), dtype={"movieId": str})
    tags = pd.read_csv(os.path.join(raw_dir, "mls_tags.csv"), dtype=str)
    posters = {name[:-4] for name in os.listdir(os.path.join(raw_dir, "posters"))}
    ids = movies["movieId"][movies["movieId"].isin(posters)]
    liked = ratings["movieId"][ratings["rating"] >= 4.0]
    return (set(ids[~ids.isin(ratings["movieId"]) & ~ids.isin(tags["movieId"])]), set(ids[~ids.isin(liked)]))


@pytest.mark.parametrize("only_with_poster", [False, True])
def test_real_posters_content_only_movies_are_items(tmp_path, only_with_poster):
    """The newly arrived posters (no rating, no tag in this copy) are items with their image, in no split."""
    content_only, unliked = _raw_posters(_raw_dir("movielens_posters"))
    # The README's 540 new posters are drawn from all 3,872 poster ids; 420 of them are ml-latest-small
    # movies (the other posters are ML-1M movies absent from mls_movies.csv, never items here).
    assert len(content_only) == 420 and len(unliked) == 978
    ds, meta = _import_real("movielens_posters", tmp_path, only_with_poster=only_with_poster)
    assert ds.num_items == meta["counts"]["items"] == (2947 if only_with_poster else 9742)
    interactions = np.zeros(ds.num_items, dtype=np.int64)
    for frame in ds.interactions.values():
        interactions += np.bincount(frame["item"], minlength=ds.num_items)
    post_tags = np.bincount(ds.post_tags["item"], minlength=ds.num_items)
    rows = ds.item_index(sorted(content_only))
    assert (interactions[rows] == 0).all() and (post_tags[rows] == 0).all()
    assert all(os.path.exists(p) and os.path.basename(p) == f"{i}.jpg"
               for p, i in zip(ds.item_image[rows], ds.item_ids[rows]))
    assert all(ds.item_tags[r] and ds.item_artist[r] >= 0 for r in rows)  # their genres are kept (all 420 list some)
    # Nothing with a poster was dropped for lack of likes: every poster movie without one is an item.
    with_image = ds.item_image != ""
    assert set(ds.item_ids[with_image & (interactions == 0)]) == unliked


def test_real_lastfm_2k(tmp_path):
    ds, meta = _import_real("lastfm_2k", tmp_path)
    assert ds.num_users == 1892 and ds.num_items == 17632
    assert len(ds.split("train")) == 92834 and len(ds.social) == 25434
    # README's 186,479 "tag assignments" counts a blank line; 1,538 of the 186,478 real rows are on
    # artists absent from artists.dat and cannot resolve.
    assert len(ds.post_tags) == 186478 - 1538
    log = "\n".join(meta["import_log"])
    assert "dropped 1538 tag assignment(s)" in log and "skipped 1 blank line" in log
    assert meta["file_encodings"]["tags.dat"] == "latin-1"
    assert np.issubdtype(ds.split("train")["rating"].dtype, np.floating)
