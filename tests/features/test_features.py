"""`tfvrec features`: the tf.data pipeline on tiny TF-Hub-style SavedModels built here.

The models compute the mean colour of what they are fed, so the expected vectors are known
exactly: a solid-colour PNG of colour c gives c / 255 whatever its size, and the centre crop
of a three-stripe image gives the middle stripe's colour.
"""
import argparse
import os

import tfvrec  # noqa: F401  (tf-keras before TensorFlow)
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.data.errors import DataError
from tfvrec.data.features import load_features, save_features
from tfvrec.features import extract

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "grey": (128, 128, 128),
           "teal": (0, 128, 128), "olive": (128, 128, 0)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three tiny handles: a Keras model saved as a reusable SavedModel (fixed 8x8 input, __call__),
    a tf.Module with only a dynamic-size multi-output signature, and a uint8-input signature."""
    import tensorflow as tf
    import tf_keras as keras

    root = tmp_path_factory.mktemp("hub")
    inputs = keras.Input((8, 8, 3), name="images")
    keras_model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    tf.saved_model.save(keras_model, str(root / "keras_mean"))

    class Multi(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")])
        def serve(self, pixels):
            size = tf.cast(tf.shape(pixels)[1:3], tf.float32)
            return {"mean": tf.reduce_mean(pixels, axis=[1, 2]),
                    "size": tf.tile(size[None], [tf.shape(pixels)[0], 1])}

    multi = Multi()
    tf.saved_model.save(multi, str(root / "multi"), signatures={"serving_default": multi.serve})

    class Bytes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.uint8)])
        def serve(self, images):
            return {"features": tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2])}

    uint8 = Bytes()
    tf.saved_model.save(uint8, str(root / "uint8"), signatures={"features": uint8.serve})
    return {name: str(root / name) for name in ("keras_mean", "multi", "uint8")}


def solid(path, colour, size=(12, 9)):
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(path)


def colour_folder(folder, names=("red", "green", "blue")):
    os.makedirs(folder, exist_ok=True)
    for n, name in enumerate(names):
        solid(os.path.join(folder, f"{name}.png"), COLOURS[name], size=(10 + 7 * n, 13))
    return folder


def as_dict(path):
    ids, vectors = load_features(path)
    return dict(zip(ids.tolist(), vectors))


def test_folder_pipeline_values_and_format(tmp_path, models):
    folder = colour_folder(tmp_path / "imgs", ("red", "green", "blue", "grey"))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    summary = extract.extract_features(str(folder), models["keras_mean"], str(tmp_path / "out"), progress=False)
    out = str(tmp_path / "out.npz")
    assert summary.out == out and summary.extracted == 4 and summary.dim == 3 and not summary.bad
    with np.load(out, allow_pickle=False) as archive:  # the project's feature format
        assert sorted(archive.files) == ["features", "item"]
        assert archive["features"].dtype == np.float32
    vectors = as_dict(out)
    assert sorted(vectors) == ["blue", "green", "grey", "red"]
    for name, vector in vectors.items():
        np.testing.assert_allclose(vector, np.array(COLOURS[name]) / 255.0, atol=1e-5)
    assert not os.path.exists(out + ".parts")


def test_centre_crop_and_input_size_from_signature(tmp_path, models):
    folder = tmp_path / "stripes"
    folder.mkdir()
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, :10], wide[:, 10:20], wide[:, 20:] = COLOURS["red"], COLOURS["green"], COLOURS["blue"]
    Image.fromarray(wide).save(folder / "wide.png")
    Image.fromarray(wide.transpose(1, 0, 2)).save(folder / "tall.png")  # 30 high, 10 wide
    out = tmp_path / "f.npz"
    summary = extract.extract_features(str(folder), models["multi"], str(out), output_key="mean",
                                       image_size=16, progress=False)
    assert summary.extracted == 2
    for vector in as_dict(out).values():
        np.testing.assert_allclose(vector, [0, 1, 0], atol=1e-5)  # only the middle stripe is left
    extract.extract_features(str(folder), models["multi"], str(tmp_path / "size.npz"), output_key="size",
                             image_size=16, progress=False)
    for vector in as_dict(tmp_path / "size.npz").values():
        np.testing.assert_array_equal(vector, [16, 16])
    # the Keras model's signature fixes 8x8; asking for another size is an error
    with pytest.raises(DataError, match="8x8"):
        extract.extract_features(str(folder), models["keras_mean"], str(tmp_path / "g.npz"), image_size=16,
                                 progress=False)


def test_output_selection_errors_and_uint8_models(tmp_path, models):
    folder = colour_folder(tmp_path / "imgs", ("teal", "olive"))
    with pytest.raises(DataError, match="--output-key"):
        extract.extract_features(str(folder), models["multi"], str(tmp_path / "a.npz"), progress=False)
    with pytest.raises(DataError, match="no signature 'nope'"):
        extract.extract_features(str(folder), models["multi"], str(tmp_path / "a.npz"), signature="nope",
                                 progress=False)
    extract.extract_features(str(folder), models["uint8"], str(tmp_path / "u.npz"), progress=False)
    for name, vector in as_dict(tmp_path / "u.npz").items():
        np.testing.assert_allclose(vector, COLOURS[name], atol=1e-3)  # uint8 input: 0..255 values
    with pytest.raises(DataError, match="cannot load this TF-Hub handle"):
        extract.extract_features(str(folder), str(tmp_path / "no_such_model"), str(tmp_path / "b.npz"),
                                 progress=False)
    with pytest.raises(DataError, match="not found or not a directory"):
        extract.extract_features(str(tmp_path / "missing"), models["multi"], str(tmp_path / "b.npz"),
                                 progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files"):
        extract.extract_features(str(empty), models["multi"], str(tmp_path / "b.npz"), progress=False)


def test_bad_files_fail_by_name_unless_skipped(tmp_path, models, capsys):
    folder = colour_folder(tmp_path / "imgs", ("red", "green", "blue"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    (folder / "empty.png").write_bytes(b"")
    out = str(tmp_path / "f.npz")
    with pytest.raises(DataError) as error:
        extract.extract_features(str(folder), models["keras_mean"], out, batch_size=2, progress=False)
    message = str(error.value)
    assert "broken.jpg" in message and "--skip-bad" in message  # the first bad file, in name order
    assert not os.path.exists(out)
    summary = extract.extract_features(str(folder), models["keras_mean"], out, batch_size=2, skip_bad=True,
                                       progress=False)
    assert sorted(os.path.basename(p) for p, _ in summary.bad) == ["broken.jpg", "empty.png"]
    assert summary.reused + summary.extracted == 3
    assert sorted(as_dict(out)) == ["blue", "green", "red"]
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "empty.png" in err


def test_resume_after_kill_extracts_only_missing(tmp_path, models, monkeypatch):
    folder = colour_folder(tmp_path / "imgs", ("red", "green", "blue", "grey", "teal", "olive"))
    out = str(tmp_path / "f.npz")
    calls = []
    original = extract.HubExtractor.__call__

    def dies_on_second_batch(self, images):
        calls.append(int(images.shape[0]))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process were killed mid-run
        return original(self, images)

    monkeypatch.setattr(extract.HubExtractor, "__call__", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        extract.extract_features(str(folder), models["keras_mean"], out, batch_size=2, progress=False)
    assert not os.path.exists(out)
    assert sorted(os.listdir(out + ".parts")) == [".tfvrec-output", "manifest.json", "part-000000.npz"]  # + marker
    monkeypatch.setattr(extract.HubExtractor, "__call__", original)

    summary = extract.extract_features(str(folder), models["keras_mean"], out, batch_size=2, progress=False)
    assert (summary.reused, summary.extracted) == (2, 4)
    assert len(as_dict(out)) == 6 and not os.path.exists(out + ".parts")

    solid(folder / "late1.png", (10, 20, 30))
    solid(folder / "late2.png", (40, 50, 60))
    summary = extract.extract_features(str(folder), models["keras_mean"], out, batch_size=2, progress=False)
    assert (summary.reused, summary.extracted) == (6, 2)
    vectors = as_dict(out)
    assert len(vectors) == 8
    np.testing.assert_allclose(vectors["late2"], np.array([40, 50, 60]) / 255.0, atol=1e-5)

    summary = extract.extract_features(str(folder), models["keras_mean"], out, progress=False)
    assert (summary.reused, summary.extracted) == (8, 0)
    summary = extract.extract_features(str(folder), models["keras_mean"], out, overwrite=True, progress=False)
    assert (summary.reused, summary.extracted) == (0, 8)


def test_resume_refuses_other_dimensions(tmp_path, models):
    folder = colour_folder(tmp_path / "imgs", ("red", "green"))
    out = str(tmp_path / "f.npz")
    save_features(out, ["red"], np.ones((1, 5), np.float32))
    with pytest.raises(DataError, match="5-d vectors but this model gives 3-d"):
        extract.extract_features(str(folder), models["keras_mean"], out, progress=False)


def _dataset(path, with_images=True):
    users = pd.DataFrame({"user": ["u1", "u2"]})
    items = pd.DataFrame({"item": ["i1", "i2", "i3"]})
    if with_images:
        items["image"] = ["img/a.png", "img/b.png", ""]
    train = pd.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i1"]})  # i2: an image nobody interacted with
    pixels = np.stack([np.full((6, 9, 3), COLOURS[c], np.uint8) for c in ("red", "green", "blue")])
    write_dataset(str(path), users, items, {"train": train},
                  images=None if with_images else (["i1", "i2", "i3"], pixels))
    if with_images:
        os.makedirs(path / "img")
        solid(path / "img" / "a.png", COLOURS["teal"])
        solid(path / "img" / "b.png", COLOURS["olive"])
    return path


def test_dataset_directory_input(tmp_path, models):
    ds = _dataset(tmp_path / "ds")
    summary = extract.extract_features(str(ds), models["keras_mean"], "visual", progress=False)
    assert summary.out == str(ds / "features" / "visual.npz") and summary.without_image == 1
    vectors = as_dict(summary.out)
    np.testing.assert_allclose(vectors["i1"], np.array(COLOURS["teal"]) / 255.0, atol=1e-5)
    assert sorted(vectors) == ["i1", "i2"]  # i2 has no interaction: still an item, with its vector
    np.testing.assert_allclose(vectors["i2"], np.array(COLOURS["olive"]) / 255.0, atol=1e-5)
    assert "visual" in load_dataset(str(ds)).feature_names()

    synthetic = _dataset(tmp_path / "synthetic", with_images=False)  # pixels in images.npz
    extract.extract_features(str(synthetic), models["keras_mean"], "pix", progress=False)
    matrix = load_dataset(str(synthetic)).features("pix")
    np.testing.assert_allclose(matrix, np.eye(3), atol=1e-5)


def test_register_cli_and_run(tmp_path, models, capsys):
    parser = argparse.ArgumentParser(prog="tfvrec")
    commands = parser.add_subparsers(dest="command", required=True)
    extract.register_cli(commands)
    folder = colour_folder(tmp_path / "imgs")
    out = str(tmp_path / "cli.npz")
    args = parser.parse_args(["features", "--images", str(folder), "--hub", models["keras_mean"], "--out", out,
                              "--batch-size", "2", "--skip-bad"])
    assert args.func is extract.run and args.skip_bad and args.batch_size == 2
    assert args.func(args) == 0
    assert "3 feature vectors (d=3)" in capsys.readouterr().out
    assert sorted(as_dict(out)) == ["blue", "green", "red"]
    assert extract.main(["--images", str(tmp_path / "nope"), "--hub", models["keras_mean"], "--out", out]) == 2
    assert "not found" in capsys.readouterr().err


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run > /dev/null",))


def test_checkpoint_reader_rejects_garbage_and_code(tmp_path):
    import pickle

    from tfvrec.features import efficientnet_lite

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        efficientnet_lite.read_torch_state_dict(str(garbage))
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for header in (efficientnet_lite._LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(DataError, match="refusing to load"):
        efficientnet_lite.read_torch_state_dict(str(evil))
    with pytest.raises(DataError, match="not found"):
        efficientnet_lite.read_torch_state_dict(str(tmp_path / "missing.pth"))


class _Marker:
    """A pickle that, loaded with plain `pickle.load`, creates the file it names."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("where", ["magic", "protocol", "sys_info", "keys"])
def test_legacy_checkpoint_runs_no_code_from_any_pickle(tmp_path, where):
    """Every pickle of a legacy .pth is read restricted: a crafted header (read before the magic number is
    checked) or key list is refused naming the file, and the command it carries never runs."""
    import pickle

    from tfvrec.features import efficientnet_lite

    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil-{where}.pth"
    records = {"magic": efficientnet_lite._LEGACY_MAGIC, "protocol": 1001, "sys_info": {"little_endian": True},
               "state": {}, "keys": []}
    records[where] = _Marker(marker)
    with open(evil, "wb") as f:
        for record in records.values():
            pickle.dump(record, f, protocol=2)
    with pytest.raises(DataError, match="refusing to load posix.system") as caught:
        efficientnet_lite.read_torch_state_dict(str(evil))
    assert str(evil) in str(caught.value)
    assert not marker.exists()


def test_checkpoint_tensor_outside_its_storage_is_refused(tmp_path, monkeypatch):
    """A size or stride reaching past its storage (as_strided checks nothing) is refused, not read."""
    import pickle
    import struct
    import sys
    import types

    from tfvrec.features import efficientnet_lite

    # Stand-ins pickled by reference under torch's names, as torch writes a checkpoint.
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    _rebuild_tensor_v2.__module__ = "torch._utils"
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, size):
            self.size = size

        def __reduce__(self):
            return (_rebuild_tensor_v2, (("storage", torch.FloatStorage, "0", "cpu", 4), 0, self.size, (1,)))

    def persistent_id(obj):
        return obj if isinstance(obj, tuple) and obj and obj[0] == "storage" else None

    for size, ok in (((4,), True), ((1000,), False)):
        path = tmp_path / f"t{size[0]}.pth"
        with open(path, "wb") as f:
            for header in (efficientnet_lite._LEGACY_MAGIC, 1001, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            pickler = pickle.Pickler(f, protocol=2)
            pickler.persistent_id = persistent_id
            pickler.dump({"w": Tensor(size)})
            pickle.dump(["0"], f, protocol=2)
            f.write(struct.pack("<q", 4) + np.arange(4, dtype="<f4").tobytes())
        if ok:
            assert efficientnet_lite.read_torch_state_dict(str(path))["w"].tolist() == [0, 1, 2, 3]
        else:
            with pytest.raises(DataError, match="lies outside its storage"):
                efficientnet_lite.read_torch_state_dict(str(path))


def _rebuild_tensor_v2(*args):  # (only its pickled name matters: the reader maps it to its own)
    raise AssertionError("never called")


# -- image bombs (issue 30): the header's size is checked before any pixel is decoded -----------------------------

def _png_claiming(path, width, height):
    """A valid PNG signature and IHDR claiming ``width`` × ``height``, then a few bytes of image data: a decoder
    would allocate the whole image (20,000² × 3 = 1.2 GB) before finding the data short."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 60_000)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize("fmt, options", [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}),
                                          ("WEBP", {"lossless": False}), ("WEBP", {"lossless": True})])
def test_header_size_of_every_format_without_decoding(fmt, options):
    import io

    import tensorflow as tf
    from tfvrec.features.images import header_size
    buffer = io.BytesIO()
    Image.new("RGB", (37, 23), (10, 200, 30)).save(buffer, fmt, **options)
    assert [int(v) for v in header_size(tf.constant(buffer.getvalue()))] == [23, 37]
    assert [int(v) for v in header_size(tf.constant(b"plain text, not an image"))] == [-1, -1]
    assert [int(v) for v in header_size(tf.constant(b""))] == [-1, -1]


def test_image_bomb_refused_before_decoding(tmp_path, models):
    from tfvrec.features import images
    from tfvrec.models.cnn_permlp import patches

    folder = colour_folder(tmp_path / "imgs", ("red",))
    bomb = _png_claiming(folder / "bomb.png", 20_000, 20_000)
    assert os.path.getsize(bomb) < 1000
    out = str(tmp_path / "out.npz")
    expected = ("image of 20,000 × 20,000 pixels (400,000,000), more than the 50,000,000 pixels an image may "
                "have (refused before decoding")
    with pytest.raises(DataError, match=r"bomb\.png: image of 20,000 × 20,000 pixels") as caught:
        extract.extract_features(str(folder), models["keras_mean"], out, progress=False)
    assert expected in str(caught.value)
    summary = extract.extract_features(str(folder), models["keras_mean"], out, skip_bad=True, progress=False)
    assert summary.reused + summary.extracted == 1 and [os.path.basename(p) for p, _ in summary.bad] == ["bomb.png"]
    assert sorted(as_dict(out)) == ["red"]
    # The graph's own check (CDL's and CNN-PerMLP's decoders, served images) refuses it the same way.
    with pytest.raises(DataError, match=r"<image bytes>: image of 20,000 × 20,000 pixels \(400,000,000\), more than"):
        patches.decode_bytes(open(bomb, "rb").read(), "<image bytes>")
    # The bound is configurable: a 10 × 13 image against 100 pixels.
    os.remove(bomb)
    with pytest.raises(DataError, match=r"red\.png: image of 10 × 13 pixels \(130\), more than the 100 pixels"):
        extract.extract_features(str(folder), models["keras_mean"], str(tmp_path / "small.npz"), progress=False,
                                 max_image_pixels=100)
    assert images.max_image_file_bytes(100) == 400 + 2 ** 20


def test_image_files_that_are_not_regular_files_are_refused(tmp_path, models):
    folder = colour_folder(tmp_path / "imgs", ("red", "green"))
    data = tmp_path / "ds"
    from tfvrec.data.dataset import write_dataset
    os.mkfifo(tmp_path / "fifo.png")  # nobody writes it: reading it would block the pipeline forever
    items = pd.DataFrame({"item": ["a", "b"], "image": [str(folder / "red.png"), str(tmp_path / "fifo.png")]})
    write_dataset(str(data), users=pd.DataFrame({"user": ["u"]}), items=items,
                  interactions={"train": pd.DataFrame({"user": ["u"], "item": ["a"]})})
    with pytest.raises(DataError, match=r"fifo\.png, key 'b': is a FIFO \(named pipe\); expected an image file"):
        extract.extract_features(str(data), models["keras_mean"], "v", progress=False)
