"""The data set format: round trip, and one clear message for each kind of bad input."""
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec.data.dataset import load_dataset, read_interactions, write_dataset
from tfvrec.data.errors import DataError
from tfvrec.data.features import load_features, save_features


def tiny(path, **changes):
    tables = dict(
        users=pd.DataFrame({"user": ["a", "b", "c"]}),
        items=pd.DataFrame({"item": ["x", "y", "z"], "creator": ["a", "", "b"], "artist": ["r1", "r2", "r1"],
                            "tags": [["t1", "t2"], [], ["t3"]]}),
        interactions={"train": pd.DataFrame({"user": ["a", "b", "c", "a"], "item": ["x", "y", "z", "y"],
                                             "timestamp": [1, 2, 3, 4]}),
                      "validation": pd.DataFrame({"user": ["a"], "item": ["z"], "timestamp": [5]})},
        social=pd.DataFrame({"user": ["a", "b"], "followed": ["b", "c"]}),
        post_tags=pd.DataFrame({"user": ["a"], "item": ["x"], "tag": ["t1"]}),
        groups=pd.DataFrame({"group": ["g"], "user": ["c"]}),
        features={"f": (["z", "x", "y"], np.arange(6, dtype=np.float32).reshape(3, 2))},
    )
    tables.update(changes)
    return write_dataset(os.path.join(path, "ds"), **tables)


def test_round_trip_resolves_ids_to_indices(tmp_path):
    ds = load_dataset(tiny(tmp_path))
    assert ds.num_users == 3 and ds.num_items == 3
    assert ds.item_creator.tolist() == [0, -1, 1]
    assert ds.artist_ids.tolist() == ["r1", "r2"] and ds.item_artist.tolist() == [0, 1, 0]
    assert ds.item_tags == [["t1", "t2"], [], ["t3"]]
    assert ds.split("train")[["user", "item"]].values.tolist() == [[0, 0], [1, 1], [2, 2], [0, 1]]
    assert ds.social.values.tolist() == [[0, 1], [1, 2]]
    # Features come back aligned with items.tsv order, not the file's.
    np.testing.assert_array_equal(ds.features("f"), [[2, 3], [4, 5], [0, 1]])
    assert [list(x) for x in ds.train_items_by_user()] == [[0, 1], [1], [2]]


def test_items_without_interactions_are_items(tmp_path, capsys):
    """An item with content (image, tags, artist, feature vector) but no interaction and no post tag."""
    items = pd.DataFrame({"item": ["x", "y", "z", "new"], "creator": ["a", "", "b", ""],
                          "artist": ["r1", "r2", "r1", "r3"], "image": ["", "", "", "img/new.jpg"],
                          "tags": [["t1", "t2"], [], ["t3"], ["t4"]]})
    features = {"f": (["z", "x", "new", "y"], np.arange(8, dtype=np.float32).reshape(4, 2))}
    ds = load_dataset(tiny(tmp_path, items=items, features=features))
    assert ds.num_items == 4 and ds.item_ids[3] == "new"
    assert ds.item_image[3] == os.path.join(ds.path, "img", "new.jpg") and ds.item_tags[3] == ["t4"]
    assert ds.artist_ids[ds.item_artist[3]] == "r3"
    np.testing.assert_array_equal(ds.features("f")[3], [4, 5])
    assert not any((frame["item"] == 3).any() for frame in ds.interactions.values())
    from tfvrec import cli
    assert cli.main(["data", "validate", ds.path]) == 0
    out = capsys.readouterr().out
    assert "items 4" in out and "items without any interaction 1 (kept: content-only items)" in out


def rewrite(path, name, text):
    with open(os.path.join(path, name), "w") as f:
        f.write(text)


def test_missing_column_names_file_and_columns(tmp_path):
    path = tiny(tmp_path)
    rewrite(path, "interactions/train.tsv", "user\ttimestamp\na\t1\n")
    with pytest.raises(DataError) as e:
        load_dataset(path)
    assert "interactions/train.tsv, line 1: missing column(s) ['item']" in str(e.value)


def test_unknown_item_names_file_line_and_id(tmp_path):
    path = tiny(tmp_path)
    rewrite(path, "interactions/train.tsv", "user\titem\na\tx\nb\tnope\n")
    with pytest.raises(DataError) as e:
        load_dataset(path)
    assert "train.tsv, line 3: item 'nope' is not in items.tsv" in str(e.value)


def test_unknown_creator_and_followed_user(tmp_path):
    path = tiny(tmp_path)
    rewrite(path, "social.tsv", "user\tfollowed\na\tb\na\tghost\n")
    with pytest.raises(DataError, match=r"social.tsv, line 3: followed user 'ghost' is not in users.tsv"):
        load_dataset(path)
    path = tiny(tmp_path / "2")
    rewrite(path, "items.tsv", "item\tcreator\nx\ta\ny\tghost\nz\t\n")
    with pytest.raises(DataError, match=r"items.tsv, line 3: creator 'ghost' is not in users.tsv"):
        load_dataset(path)


def test_nan_feature_names_the_item(tmp_path):
    features = np.ones((3, 2), np.float32)
    features[1, 0] = np.nan
    path = os.path.join(tmp_path, "f.npz")
    np.savez(path, item=np.array(["x", "y", "z"]), features=features)
    with pytest.raises(DataError) as e:
        load_features(path)
    assert "f.npz, key 'y': feature vector contains NaN or inf" in str(e.value)
    with pytest.raises(DataError, match="NaN or inf"):
        save_features(path, ["x", "y", "z"], features)


def test_duplicates_empty_splits_and_bad_numbers(tmp_path):
    path = tiny(tmp_path)
    rewrite(path, "items.tsv", "item\nx\ny\nx\n")
    with pytest.raises(DataError, match=r"items.tsv, line 4: duplicate item 'x' \(lines 2 and 4\)"):
        load_dataset(path)
    path = tiny(tmp_path / "2")
    rewrite(path, "interactions/validation.tsv", "user\titem\n")
    with pytest.raises(DataError, match=r"validation.tsv: split is empty"):
        load_dataset(path)
    path = tiny(tmp_path / "3")
    rewrite(path, "interactions/train.tsv", "user\titem\ttimestamp\na\tx\tyesterday\n")
    with pytest.raises(DataError, match=r"train.tsv, line 2: column 'timestamp' must be a finite integer"):
        load_dataset(path)
    path = tiny(tmp_path / "4")
    rewrite(path, "users.tsv", "user\tage\na\t3\n")
    with pytest.raises(DataError, match=r"users.tsv, line 1: unexpected column\(s\) \['age'\]"):
        load_dataset(path)


def test_missing_features_for_an_item(tmp_path):
    path = tiny(tmp_path, features={"f": (["x", "y"], np.ones((2, 2)))})
    with pytest.raises(DataError, match=r"f.npz, key 'z': no feature vector for item"):
        load_dataset(path).features("f")


def test_heldout_file_headerless_like_flickr_val(tmp_path):
    ds = load_dataset(tiny(tmp_path))
    held = tmp_path / "likes_val.tsv"
    held.write_text("b\tx\nc\ty\n")
    frame = read_interactions(str(held), ds, allow_headerless=True)
    assert frame[["user", "item"]].values.tolist() == [[1, 0], [2, 1]]
    held.write_text("user\titem\nb\tq\n")
    with pytest.raises(DataError, match=r"likes_val.tsv, line 2: item 'q' is not in items.tsv"):
        read_interactions(str(held), ds, allow_headerless=True)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tiny(tmp_path)
    with pytest.raises(DataError, match="already exists"):
        tiny(tmp_path)
    with pytest.raises(ValueError):
        tiny(tmp_path / "2", social=pd.DataFrame({"user": ["a"], "bogus": ["b"]}))
    assert not os.path.exists(tmp_path / "2" / "ds")
    assert [p for p in os.listdir(tmp_path / "2") if p.startswith(".tmp")] == []
    assert load_dataset(path).num_users == 3
