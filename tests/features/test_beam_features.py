"""``tfvrec features --runner beam``: the Beam pipeline (DirectRunner) writes the same vectors as the
in-process extraction, as a sharded feature set that data sets read like one file; bad images
stop it by name (nothing written) or are skipped and reported."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfvrec.data import features as features_lib
from tfvrec.data.dataset import load_dataset
from tfvrec.data.errors import DataError
from tfvrec.features import extract

from test_features import _dataset, models  # noqa: F401  (the tiny TF-Hub handles, a tiny data set)

beam_extract = pytest.importorskip("tfvrec.features.beam_extract")
pytest.importorskip("apache_beam",
                    reason="Apache Beam not installed (pip install 'tfvrec[beam]'; make test installs it)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def random_folder(folder, count=23, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for n in range(count):
        h, w = rng.integers(8, 40, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(folder, f"img{n:03d}.png"))
    return folder


def test_beam_vectors_equal_the_in_process_ones_in_complete_disjoint_shards(tmp_path, models):  # noqa: F811
    folder = random_folder(str(tmp_path / "images"))
    local = extract.extract_features(folder, models["keras_mean"], str(tmp_path / "local.npz"), progress=False,
                                     batch_size=4)
    summary = beam_extract.extract_with_beam(folder, models["keras_mean"], str(tmp_path / "beam.npz"), num_shards=3,
                                             batch_size=5)
    assert summary["vectors"] == local.total == 23 and summary["shards"] == 3
    shards = [features_lib.load_features(str(tmp_path / features_lib.shard_path("beam", s, 3))) for s in range(3)]
    ids = np.concatenate([i for i, _ in shards])
    assert len(ids) == len(set(ids)) == 23  # disjoint and complete
    for s, (shard_ids, _) in enumerate(shards):
        assert all(beam_extract.shard_of(i, 3) == s for i in shard_ids)
    local_ids, local_vectors = features_lib.load_features(local.out)
    beam_ids, beam_vectors = features_lib.load_feature_set(str(tmp_path / "beam"))
    order = np.argsort(beam_ids)
    np.testing.assert_array_equal(beam_ids[order], np.sort(local_ids))
    np.testing.assert_allclose(beam_vectors[order], local_vectors[np.argsort(local_ids)], atol=1e-6)


def test_data_sets_read_a_sharded_set_like_one_file(tmp_path, models):  # noqa: F811
    synthetic = _dataset(tmp_path / "synthetic", with_images=False)  # pixels in images.npz
    beam_extract.extract_with_beam(str(synthetic), models["keras_mean"], "pix", num_shards=2, batch_size=2)
    dataset = load_dataset(str(synthetic))
    assert dataset.feature_names() == ["pix"]
    np.testing.assert_allclose(dataset.features("pix"), np.eye(3), atol=1e-5)
    os.remove(os.path.join(str(synthetic), "features", features_lib.shard_path("pix", 1, 2)))
    with pytest.raises(DataError, match="shard missing"):
        load_dataset(str(synthetic)).features("pix")


def test_bad_image_stops_by_name_and_leaves_old_features_or_is_skipped(tmp_path, models):  # noqa: F811
    folder = random_folder(str(tmp_path / "images"), count=6)
    beam_extract.extract_with_beam(folder, models["keras_mean"], str(tmp_path / "f.npz"), num_shards=2)
    before = features_lib.load_feature_set(str(tmp_path / "f"))
    with open(os.path.join(folder, "img999.png"), "wb") as f:
        f.write(b"not a png at all")
    with pytest.raises(DataError) as raised:
        beam_extract.extract_with_beam(folder, models["keras_mean"], str(tmp_path / "f.npz"), num_shards=2)
    assert "img999.png" in str(raised.value) and "--skip-bad" in str(raised.value)
    after = features_lib.load_feature_set(str(tmp_path / "f"))
    np.testing.assert_array_equal(before[0], after[0])  # the previous set untouched
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".beam-")]  # no temporary folder left
    summary = beam_extract.extract_with_beam(folder, models["keras_mean"], str(tmp_path / "f.npz"), num_shards=3,
                                             skip_bad=True)
    assert summary["vectors"] == 6 and [os.path.basename(b[0]) for b in summary["bad"]] == ["img999.png"]
    assert not os.path.exists(tmp_path / features_lib.shard_path("f", 0, 2))  # the 2-shard set was replaced


def test_command_line_runner_beam(tmp_path, models):  # noqa: F811
    folder = random_folder(str(tmp_path / "images"), count=4)
    done = subprocess.run([sys.executable, "-m", "tfvrec", "features", "--images", folder, "--hub",
                           models["keras_mean"], "--out", str(tmp_path / "cli.npz"), "--runner", "beam",
                           "--num-shards", "2"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 feature vectors" in done.stdout and "2 shards" in done.stdout
