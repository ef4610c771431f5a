"""Destructive flags touch only what tfvrec made (issue 30): ``--overwrite`` replaces a directory only when
it carries tfvrec's marker of that kind of output, and never a directory that is an input of the same
command (or holds one, or lies inside one). Each refusal is one exit-2 error, and nothing is touched."""
import os

import numpy as np
import pytest

from tfvrec import cli, outputs
from tfvrec.data.dataset import load_dataset
from tfvrec.data.errors import DataError

from planted import planted_dataset

SMALL_WORLD = ["--set", "num_users=60", "--set", "num_items=120", "--set", "num_creators=10"]


def _error_of(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    return err


def _flickr_raw(folder):
    os.makedirs(folder)
    for name, text in (("likes_train.tsv", "user\titem\n0\t10\n1\t11\n"), ("likes_val.tsv", "user\titem\n0\t11\n"),
                       ("follows.tsv", "user\tfollowed\n0\t1\n"), ("uploads.tsv", "item\tuploader\n10\t1\n11\t0\n")):
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return str(folder)


def test_synth_overwrite_keeps_an_unrelated_directory(tmp_path, capsys):
    """`data synth --out DIR --overwrite` deleted an unrelated file in DIR; now DIR is refused, untouched."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work\n")
    err = _error_of(["data", "synth", "--out", str(folder), "--overwrite", *SMALL_WORLD], capsys)
    assert f"{folder}: is not something tfvrec wrote (no .tfvrec-output marker of a data set)" in err
    assert (folder / "thesis.tex").read_text() == "years of work\n" and os.listdir(folder) == ["thesis.tex"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temporary left behind


def test_synth_overwrite_replaces_a_data_set_tfvrec_wrote(tmp_path, capsys):
    out = tmp_path / "world"
    assert cli.main(["data", "synth", "--out", str(out), *SMALL_WORLD]) == 0
    assert outputs.kind_of(str(out)) == "dataset"
    assert cli.main(["data", "synth", "--out", str(out), "--overwrite", *SMALL_WORLD[:-2], "--set",
                     "num_creators=12"]) == 0
    assert load_dataset(str(out)).num_users == 60
    assert sorted(os.listdir(tmp_path)) == ["world"]  # (the previous copy, moved aside, is gone)
    capsys.readouterr()


def test_import_refuses_its_raw_folder_as_output(tmp_path, capsys):
    """`data import --raw R --out R --overwrite` replaced the raw data; now refused, the raw files intact."""
    raw = _flickr_raw(tmp_path / "raw")
    before = {name: open(os.path.join(raw, name)).read() for name in os.listdir(raw)}
    for out, relation in ((raw, "is"), (os.path.join(raw, "imported"), "lies inside")):
        err = _error_of(["data", "import", "flickr_fs", "--raw", raw, "--out", out, "--overwrite"], capsys)
        assert f"--out {relation} --raw {raw}, an input of this command" in err
    assert {name: open(os.path.join(raw, name)).read() for name in os.listdir(raw)} == before
    # An output holding the raw folder (even a data set tfvrec wrote) is refused too.
    holder = tmp_path / "holder"
    assert cli.main(["data", "import", "flickr_fs", "--raw", raw, "--out", str(holder)]) == 0
    inner = _flickr_raw(holder / "raw_copy")
    err = _error_of(["data", "import", "flickr_fs", "--raw", inner, "--out", str(holder), "--overwrite"], capsys)
    assert f"--out holds --raw {inner}" in err and os.path.isdir(inner)


def test_import_through_a_symlink_is_the_same_folder(tmp_path, capsys):
    raw = _flickr_raw(tmp_path / "raw")
    os.symlink(raw, tmp_path / "alias")
    err = _error_of(["data", "import", "flickr_fs", "--raw", raw, "--out", str(tmp_path / "alias"), "--overwrite"],
                    capsys)
    assert "--out is --raw" in err and sorted(os.listdir(raw)) == sorted(
        ["likes_train.tsv", "likes_val.tsv", "follows.tsv", "uploads.tsv"])


def test_cdl_split_refuses_its_input_as_output(tmp_path, capsys):
    """`cdl-split --data D --out D --overwrite` deleted its own input, then crashed; now refused, D intact."""
    data = planted_dataset(str(tmp_path))
    before = sorted(os.listdir(data))
    err = _error_of(["cdl-split", "--data", data, "--out", data, "--overwrite", "--min_likes", "5", "--hidden", "2"],
                    capsys)
    assert f"--out is --data {data}, an input of this command" in err
    assert sorted(os.listdir(data)) == before and load_dataset(data).num_users == 90
    # A split of its own, then re-split over itself with --overwrite: a data set tfvrec wrote.
    out = str(tmp_path / "split")
    assert cli.main(["cdl-split", "--data", data, "--out", out, "--min_likes", "5", "--hidden", "2"]) == 0
    assert cli.main(["cdl-split", "--data", data, "--out", out, "--overwrite", "--min_likes", "5", "--hidden",
                     "3"]) == 0
    assert len(load_dataset(out).split("test")) == 90 * 3
    capsys.readouterr()


def test_features_never_replace_what_they_did_not_write(tmp_path, capsys):
    """`tfvrec features --overwrite`: --out must be a feature file (a data set's images.npz, any other file is
    refused), and FILE.parts is removed only when tfvrec made it."""
    from tfvrec.features import extract
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(images / "red.png")
    model = tmp_path / "model"  # (never loaded: every refusal comes before the model)
    model.mkdir()
    precious = tmp_path / "pixels.npz"
    np.savez(precious, item=np.array(["a"]), pixels=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="exists and is not a tfvrec feature file"):
        extract.extract_features(str(images), str(model), str(precious), overwrite=True, progress=False)
    assert sorted(np.load(precious).files) == ["item", "pixels"]
    parts = tmp_path / "vectors.npz.parts"
    parts.mkdir()
    (parts / "notes.txt").write_text("mine\n")
    with pytest.raises(DataError, match="exists and is not a folder of tfvrec's partial results"):
        extract.extract_features(str(images), str(model), str(tmp_path / "vectors"), overwrite=True,
                                 progress=False)
    assert (parts / "notes.txt").read_text() == "mine\n"
    with pytest.raises(DataError, match="--out lies inside --hub"):
        extract.extract_features(str(images), str(model), str(model / "features.npz"), progress=False)
    err = _error_of(["features", "--images", str(images), "--hub", str(model), "--out", str(precious),
                     "--overwrite"], capsys)
    assert "pixels.npz: exists and is not a tfvrec feature file" in err


def test_prepare_publish_atomic_and_marked(tmp_path):
    out = tmp_path / "set"
    outputs.prepare(str(out), "triplets")
    tmp = outputs.temporary(str(out))
    (open(os.path.join(tmp, "a"), "w")).close()
    outputs.publish(tmp, str(out), "triplets")
    assert outputs.kind_of(str(out)) == "triplets" and os.path.exists(out / "a")
    with pytest.raises(DataError, match="already exists"):
        outputs.prepare(str(out), "triplets")
    with pytest.raises(DataError, match="is a tfvrec triplet record set, not a data set"):
        outputs.prepare(str(out), "dataset", overwrite=True)
    (out / outputs.MARKER).write_text("anything else\n")  # a marker naming no kind is no marker
    with pytest.raises(DataError, match="is not something tfvrec wrote"):
        outputs.prepare(str(out), "triplets", overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert outputs.prepare(str(empty), "dataset", overwrite=True) == str(empty)  # nothing there to lose
