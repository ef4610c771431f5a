"""Images for feature extraction: where they come from and the ``tf.data`` pipeline that reads them.

An `ImageSource` is a folder of image files (item id = file name without extension) or a
tfvrec data set (its ``items.tsv`` ``image`` column, or ``images.npz`` pixels for synthetic
worlds). Images are read, decoded (JPEG/PNG/GIF/BMP), centre-cropped to the largest square
and resized (bilinear, antialiased), decoded in parallel and prefetched. `diagnose` says
why one file cannot be used. TensorFlow is imported only when a pipeline is built.
"""
import dataclasses
import os
import re
from typing import List, Optional

import numpy as np

from tfvrec.data.errors import DataError
from tfvrec.errors import clean_tf_message
from tfvrec.data.dataset import load_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


@dataclasses.dataclass
class ImageSource:
    """Items to extract: one image file per item, or uint8 pixel arrays (synthetic data sets)."""

    item_ids: List[str]
    paths: Optional[List[str]] = None
    pixels: Optional[np.ndarray] = None
    dataset_path: Optional[str] = None  # set when --images is a data set
    without_image: int = 0  # data set items with an empty image column
    ignored_files: int = 0  # folder files that are not images (by extension)

    def name_of(self, position):
        return self.paths[position] if self.paths is not None else f"images.npz item {self.item_ids[position]!r}"


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def resolve_images(images):
    """`ImageSource` for ``--images`` (a folder of image files or a data set directory)."""
    path = os.path.abspath(images)
    if not os.path.isdir(path):
        raise DataError(path, "not found or not a directory; expected a folder of images or a tfvrec data set")
    if os.path.exists(os.path.join(path, "items.tsv")):
        return _dataset_source(path)
    ids, paths, ignored, seen = [], [], 0, {}
    for name in sorted(os.listdir(path), key=_natural_key):
        full = os.path.join(path, name)
        if name.startswith(".") or not os.path.isfile(full):
            continue
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            ignored += 1
            continue
        if stem in seen:
            raise DataError(full, f"item id {stem!r} is also used by {seen[stem]}; "
                                  "file names without extension must be unique")
        seen[stem] = name
        ids.append(stem)
        paths.append(full)
    if not ids:
        raise DataError(path, f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder, "
                              "and it is not a data set (no items.tsv)")
    return ImageSource(item_ids=ids, paths=paths, ignored_files=ignored)


def _dataset_source(path):

    dataset = load_dataset(path)
    has_image = np.array([bool(p) for p in dataset.item_image])
    if has_image.any():
        rows = np.flatnonzero(has_image)
        return ImageSource(item_ids=[str(dataset.item_ids[r]) for r in rows],
                           paths=[str(dataset.item_image[r]) for r in rows], dataset_path=path,
                           without_image=int((~has_image).sum()))
    if os.path.exists(os.path.join(path, "images.npz")):
        pixels = dataset.images()
        if pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise DataError(os.path.join(path, "images.npz"),
                            f"expected uint8 pixels of shape [n, h, w, 3], got {pixels.shape}")
        return ImageSource(item_ids=[str(i) for i in dataset.item_ids], pixels=pixels, dataset_path=path)
    raise DataError(os.path.join(path, "items.tsv"),
                    "the data set has no 'image' column and no images.npz: no images to extract features from")


def resolve_out(out, source):
    """Output path: a bare name with a data set means ``<dataset>/features/<name>.npz``."""
    if source.dataset_path is not None and os.sep not in out and "/" not in out:
        name = out[:-4] if out.endswith(".npz") else out
        return os.path.join(source.dataset_path, "features", name + ".npz")
    out = os.path.abspath(out)
    return out if out.endswith(".npz") else out + ".npz"


# ---------------------------------------------------------------------------------------------


def preprocess_image(image, size):
    """uint8 ``[h, w, 3]`` -> float32 ``[size, size, 3]`` in ``[0, 1]``: centre square crop, resize.

    Cropping the largest centred square and resizing it equals an aspect-preserving resize of the
    shorter side to ``size`` followed by a centre crop (bilinear with antialiasing, so
    downscaling averages instead of aliasing).
    """
    import tensorflow as tf

    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top:top + side, left:left + side, :]
    resized = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(resized / 255.0, 0.0, 1.0)


def decode_image_file(path):
    """Read and decode one image file to uint8 ``[h, w, 3]`` (graph-compatible)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def make_dataset(source, positions, size, batch_size):
    """Batches of ``(position, image)`` for the given source positions, in order.

    Files that fail to read or decode are dropped from the stream (``ignore_errors``); the
    caller finds them as gaps in the positions.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    positions = np.asarray(positions, dtype=np.int64)
    if source.paths is not None:
        paths = np.asarray([source.paths[p] for p in positions])
        ds = tf.data.Dataset.from_tensor_slices((positions, paths))
        ds = ds.map(lambda pos, path: (pos, preprocess_image(decode_image_file(path), size)),
                    num_parallel_calls=autotune, deterministic=True)
        ds = ds.ignore_errors(log_warning=False)
    else:
        ds = tf.data.Dataset.from_tensor_slices((positions, source.pixels[positions]))
        ds = ds.map(lambda pos, image: (pos, preprocess_image(image, size)),
                    num_parallel_calls=autotune, deterministic=True)
    return ds.batch(batch_size).prefetch(autotune)


def diagnose(path):
    """Why a file could not be used (the reader's own error message)."""
    import tensorflow as tf

    if not os.path.exists(path):
        return "image file not found"
    try:
        image = decode_image_file(tf.constant(path))
        if int(tf.size(image)) == 0:
            return "image has no pixels"
    except tf.errors.OpError as e:
        return f"cannot read or decode image ({clean_tf_message(e.message)})"
    except Exception as e:  # noqa: BLE001 - report whatever the reader said
        return f"cannot read or decode image ({type(e).__name__}: {e})"
    return "image could not be processed"


# ---------------------------------------------------------------------------------------------
