"""Images for feature extraction: where they come from and the ``tf.data`` pipeline that reads them.

An `ImageSource` is a folder of image files (item id = file name without extension) or a
tfvrec data set (its ``items.tsv`` ``image`` column, or ``images.npz`` pixels for synthetic
worlds). Images are read, decoded (JPEG/PNG/GIF/BMP), centre-cropped to the largest square
and resized (bilinear, antialiased), decoded in parallel and prefetched. `diagnose` says
why one file cannot be used. TensorFlow is imported only when a pipeline is built.

Image bombs: a 746 KB PNG can declare 16,000 × 16,000 pixels (4.4 GB once decoded and resized).
Every decode here (`decode_bounded`: features, CDL's pixels and its served images, CNN-PerMLP's)
first reads the width and height from the file's header, in the graph, on the very bytes it then
decodes, and refuses more than `max_image_pixels` (``TFVREC_MAX_IMAGE_PIXELS``, default 50
million; ``tfvrec features --max-image-pixels``) or a format other than JPEG, PNG, GIF, BMP and
WebP before any pixel is decoded. An image file must also be a regular file of at most
``4 × max pixels + 1 MiB`` bytes (no compressed image of the allowed size is larger).
"""
import dataclasses
import os
import re
from typing import List, Optional

import numpy as np

from tfvrec import input_files, outputs
from tfvrec.data.errors import DataError
from tfvrec.errors import clean_tf_message
from tfvrec.data.dataset import load_dataset
from tfvrec.errors import ConfigError

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


PARTS_SUFFIX = ".parts"  # (FILE.parts/: an extraction's finished batches, tfvrec.features.extract)


def is_feature_file(path):
    """Whether ``path`` is a tfvrec feature archive (arrays ``item`` and ``features``), by its member names."""
    try:
        with input_files.open_input(path, "a feature file") as f, np.load(f, allow_pickle=False) as archive:
            return isinstance(archive, np.lib.npyio.NpzFile) and {"item", "features"} <= set(archive.files)
    except (DataError, OSError, ValueError, EOFError):
        return False


def check_outputs(out, source, handle, flag="--out"):
    """What an extraction writes or replaces is tfvrec's own and never one of its inputs: ``out`` (and a
    sharded set's ``<stem>.npz``) must be absent or a feature file, not an image read nor inside the model
    directory; its ``.parts`` folder must be absent or marked as tfvrec's partial results (`tfvrec.outputs`)."""
    if os.path.isdir(handle):
        outputs.check_not_input(out, {"--hub": handle}, flag)
    if source.paths is not None and os.path.realpath(out) in {os.path.realpath(p) for p in source.paths}:
        raise DataError(out, f"{flag} is one of the images to read; choose another {flag}")
    if os.path.lexists(out) and not is_feature_file(out):
        raise DataError(out, f"exists and is not a tfvrec feature file (arrays 'item' and 'features'); {flag} "
                             "replaces or extends only a feature file tfvrec wrote. Remove it yourself or choose "
                             f"another {flag}")
    parts_dir = out + PARTS_SUFFIX
    if os.path.lexists(parts_dir) and (os.path.islink(parts_dir) or not os.path.isdir(parts_dir) or (
            os.listdir(parts_dir) and outputs.kind_of(parts_dir) != "feature_parts")):
        raise DataError(parts_dir, f"exists and is not a folder of tfvrec's partial results (no {outputs.MARKER} "
                                   "marker); extraction writes and removes that folder. Remove it yourself or "
                                   f"choose another {flag}")


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


DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # a 50-megapixel photo (8,660 × 5,773)


def max_image_pixels(value=None):
    """The pixel bound of one image: ``value``, else ``TFVREC_MAX_IMAGE_PIXELS``, else 50 million."""
    if value is None:
        text = os.environ.get("TFVREC_MAX_IMAGE_PIXELS", "").strip()
        if not text:
            return DEFAULT_MAX_IMAGE_PIXELS
        try:
            value = int(text)
        except ValueError:
            value = 0
        source = f"TFVREC_MAX_IMAGE_PIXELS={text[:40]!r}"
    else:
        source = f"--max-image-pixels {value}"
    if value < 1:
        raise ConfigError(f"{source}: expected a positive number of pixels")
    return int(value)


def max_image_file_bytes(max_pixels=None):
    return 4 * max_image_pixels(max_pixels) + 2 ** 20


def header_size(contents):
    """``(height, width)`` int64 read from an encoded image's header (JPEG, PNG, GIF, BMP, WebP) without
    decoding it; ``(-1, -1)`` for any other format. Graph-compatible (``contents``: a scalar string)."""
    import tensorflow as tf

    head = tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, 32), b"\0" * 32]), 0, 32)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def big(i, n):
        return sum(b[i + k] * 256 ** (n - 1 - k) for k in range(n))

    def little(i, n):
        return sum(b[i + k] * 256 ** k for k in range(n))

    def signed32(v):
        return v - tf.cast(v >= 2 ** 31, tf.int64) * 2 ** 32

    def starts(prefix, at=0):
        return tf.reduce_all(tf.equal(b[at:at + len(prefix)], tf.constant(list(prefix), tf.int64)))

    unknown = (tf.constant(-1, tf.int64), tf.constant(-1, tf.int64))
    core = tf.equal(little(14, 4), 12)  # BMP's old BITMAPCOREHEADER: 16-bit sizes
    bmp = (tf.abs(tf.where(core, little(20, 2), signed32(little(22, 4)))),
           tf.where(core, little(18, 2), signed32(little(18, 4))))
    vp8l = little(21, 4)
    webp = tf.case([(starts(b"VP8X", 12), lambda: (little(27, 3) + 1, little(24, 3) + 1)),
                    (starts(b"VP8 ", 12), lambda: (little(28, 2) % 16384, little(26, 2) % 16384)),
                    (starts(b"VP8L", 12), lambda: (vp8l // 16384 % 16384 + 1, vp8l % 16384 + 1))],
                   default=lambda: unknown)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int64)
        return shape[0], shape[1]
    return tf.case([
        (starts(b"\x89PNG\r\n\x1a\n") & starts(b"IHDR", 12), lambda: (big(20, 4), big(16, 4))),
        (starts(b"\xff\xd8\xff"), jpeg),
        (starts(b"GIF8"), lambda: (little(8, 2), little(6, 2))),
        (starts(b"BM"), lambda: bmp),
        (starts(b"RIFF") & starts(b"WEBP", 8), lambda: webp),
    ], default=lambda: unknown)


def decode_bounded(contents, max_pixels=None):
    """Encoded image bytes (a scalar string tensor) → uint8 ``[h, w, 3]``, refusing (InvalidArgumentError)
    an unknown format or more than `max_image_pixels` pixels *before* decoding. Graph-compatible."""
    import tensorflow as tf

    limit = max_image_pixels(max_pixels)
    height, width = header_size(contents)
    known = tf.debugging.Assert(height >= 0, ["not a JPEG, PNG, GIF, BMP or WebP image"])
    with tf.control_dependencies([known]):
        small = tf.debugging.Assert((height > 0) & (width > 0) & (height * width <= limit), [tf.strings.format(
            "image of {} x {} pixels, more than the {} pixels an image may have", (width, height, limit))])
    with tf.control_dependencies([small]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def file_problem(path, max_pixels=None):
    """Why ``path`` cannot be read as an image file before it is opened (missing, not a regular file, too
    large), or None. Nothing is opened: a FIFO would block the reader."""
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "image file not found"
    except OSError as e:
        return f"cannot read the image file ({e.strerror or e})"
    problem = input_files.check_stat(path, info, "an image file", max_image_file_bytes(max_pixels),
                                     error=lambda _, reason: reason)
    return problem if problem is None or not stat.S_ISREG(info.st_mode) else f"{problem} (see TFVREC_MAX_IMAGE_PIXELS)"


def decode_image_file(path, max_pixels=None):
    """Read and decode one image file to uint8 ``[h, w, 3]`` (graph-compatible), bounded by `decode_bounded`."""
    import tensorflow as tf

    return decode_bounded(tf.io.read_file(path), max_pixels)


def make_dataset(source, positions, size, batch_size, max_pixels=None):
    """Batches of ``(position, image)`` for the given source positions, in order.

    Files that fail to read or decode are dropped from the stream (``ignore_errors``); the
    caller finds them as gaps in the positions. So are files `file_problem` refuses (never opened)
    and images over `max_image_pixels` (never decoded).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    positions = np.asarray(positions, dtype=np.int64)
    if source.paths is not None:
        positions = np.asarray([p for p in positions if file_problem(source.paths[p], max_pixels) is None],
                               dtype=np.int64)
        paths = tf.constant([source.paths[p] for p in positions], tf.string, shape=[len(positions)])
        ds = tf.data.Dataset.from_tensor_slices((positions, paths))
        ds = ds.map(lambda pos, path: (pos, preprocess_image(decode_image_file(path, max_pixels), size)),
                    num_parallel_calls=autotune, deterministic=True)
        ds = ds.ignore_errors(log_warning=False)
    else:
        ds = tf.data.Dataset.from_tensor_slices((positions, source.pixels[positions]))
        ds = ds.map(lambda pos, image: (pos, preprocess_image(image, size)),
                    num_parallel_calls=autotune, deterministic=True)
    return ds.batch(batch_size).prefetch(autotune)


def size_problem(contents, max_pixels=None):
    """Why encoded image bytes are refused by their header (format, pixel count), or None (eager)."""
    height, width = (int(v) for v in header_size(contents))
    limit = max_image_pixels(max_pixels)
    if height < 0:
        return "not a JPEG, PNG, GIF, BMP or WebP image (by its first bytes)"
    if height * width > limit or height == 0 or width <= 0:
        return (f"image of {width:,} × {height:,} pixels ({height * width:,}), more than the {limit:,} pixels an "
                "image may have (refused before decoding; TFVREC_MAX_IMAGE_PIXELS or --max-image-pixels)")
    return None


def diagnose(path, max_pixels=None):
    """Why a file could not be used (its size, or the reader's own error message)."""
    import tensorflow as tf

    problem = file_problem(path, max_pixels)
    if problem is not None:
        return problem
    try:
        problem = size_problem(tf.io.read_file(path), max_pixels)
        if problem is not None:
            return problem
        image = decode_image_file(tf.constant(path), max_pixels)
        if int(tf.size(image)) == 0:
            return "image has no pixels"
    except tf.errors.OpError as e:
        return f"cannot read or decode image ({clean_tf_message(e.message)})"
    except Exception as e:  # noqa: BLE001 - report whatever the reader said
        return f"cannot read or decode image ({type(e).__name__}: {e})"
    return "image could not be processed"


# ---------------------------------------------------------------------------------------------
