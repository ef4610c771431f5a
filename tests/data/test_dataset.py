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


# -- hostile input files (issue 30): what is not a regular file, or too large, is refused at once -------------

def _in_time(call, seconds=20):
    """``call()``'s exception, raised within ``seconds`` (a blocked open/read fails the test instead of hanging)."""
    import threading
    found = []

    def run():
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            found.append(e)
        else:
            found.append(None)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert found, f"still blocked after {seconds} s"
    return found[0]


def test_fifo_and_device_inputs_are_refused_promptly(tmp_path):
    from tfvrec.data.importers import import_dataset
    from tfvrec.data.synthetic import load_truth

    path = tiny(tmp_path)
    users = os.path.join(path, "users.tsv")
    os.remove(users)
    os.mkfifo(users)  # nobody ever writes it: a plain open() blocks forever
    error = _in_time(lambda: load_dataset(path))
    assert isinstance(error, DataError) and str(error) == (f"{users}: is a FIFO (named pipe); expected a "
                                                          "tab-separated table (a regular file)")
    features = os.path.join(path, "features", "f.npz")
    os.remove(features)
    os.symlink("/dev/zero", features)  # endless
    error = _in_time(lambda: load_features(features))
    assert isinstance(error, DataError) and "is a device; expected a .npz feature file (a regular file)" in str(error)
    raw = tmp_path / "raw"
    raw.mkdir()
    os.mkfifo(raw / "likes_train.tsv")
    error = _in_time(lambda: import_dataset("flickr_fs", str(raw), str(tmp_path / "out")))
    assert isinstance(error, DataError)
    assert "likes_train.tsv: is a FIFO (named pipe); expected a raw table" in str(error)
    os.mkfifo(tmp_path / "synthetic_truth.npz")
    error = _in_time(lambda: load_truth(str(tmp_path)))
    assert isinstance(error, DataError) and "is a FIFO" in str(error)


def test_input_size_bound(tmp_path, monkeypatch):
    path = tiny(tmp_path)
    monkeypatch.setenv("TFVREC_MAX_INPUT_BYTES", "40")
    with pytest.raises(DataError, match=r"items.tsv: is \d+ bytes, more than the 40 bytes a tab-separated table may "
                                        r"have \(TFVREC_MAX_INPUT_BYTES\)"):
        load_dataset(path)
    monkeypatch.setenv("TFVREC_MAX_INPUT_BYTES", "lots")
    from tfvrec.errors import ConfigError
    with pytest.raises(ConfigError, match="TFVREC_MAX_INPUT_BYTES='lots': expected a positive number of bytes"):
        load_dataset(path)


def test_npz_array_claiming_more_than_it_holds_is_refused(tmp_path):
    """NumPy allocates the shape an array header claims before reading: 36 bytes may claim terabytes."""
    import io
    import zipfile

    from numpy.lib import format as npy
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 2)})
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("item.npy", header.getvalue() + b"\0" * 8)
        archive.writestr("features.npy", header.getvalue() + b"\0" * 8)
    with pytest.raises(DataError, match=r"claims.npz: not a readable .npz archive \(array 'item' claims shape "
                                        r"\(1000000000000, 2\) \(8,000,000,000,000 bytes\) in a member of"):
        load_features(str(path))
