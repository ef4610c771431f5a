"""``tfvrec features``: item-keyed visual feature vectors from any TF-Hub image model.

    tfvrec features --images DIR_OR_DATASET --hub HANDLE --out FILE [--skip-bad] [--batch-size N]

* ``--images`` is a folder of image files (item id = file name without extension) or a tfvrec
  data set directory (its ``items.tsv`` ``image`` column, or ``images.npz`` pixels for
  synthetic worlds). For a data set, a bare ``--out NAME`` writes ``<dataset>/features/NAME.npz``.
* ``--hub`` is anything ``tensorflow_hub.load`` accepts, in particular a local TF2 SavedModel /
  TF-Hub module directory (e.g. the EfficientNet-Lite0 one made by
  ``tools/convert_efficientnet_lite0.py``). The model is called on float32 RGB images of its
  input size with values in ``[0, 1]`` (the TF-Hub image convention; ``--pixel-range`` for others).
* Images go through a ``tf.data`` pipeline: read, decode (JPEG/PNG/GIF/BMP), centre-crop the
  largest square and resize it (bilinear, antialiased) to the model's input size, batched,
  decoded in parallel and prefetched while the model runs.
* A file that cannot be read or decoded stops the run with its name, unless ``--skip-bad``
  (then every bad file is reported by name and left out).
* Resumable: each finished batch is written atomically to ``FILE.parts/``; a re-run (after a
  crash or kill, or with new images in the folder) extracts only the items that have no vector
  yet in ``FILE`` or in ``FILE.parts/``, then merges everything into ``FILE`` (the project's
  feature format, `tfvrec.data.features`) and removes the parts.

TensorFlow and TF-Hub are imported only when a run starts. See ``docs/features.md``.
"""
import argparse
import dataclasses
import glob
import json
import os
import re
import shutil
import sys
import time
from typing import List, Optional

import numpy as np

from tfvrec.data import features as features_lib
from tfvrec.data.errors import DataError
from tfvrec.errors import clean_tf_message

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
DEFAULT_IMAGE_SIZE = 224
PIXEL_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 1.0), "0,255": (0.0, 255.0)}
# Output keys tried, in order, when a signature returns several tensors and none was named.
FEATURE_KEYS = ("features", "feature_vector", "default", "output_0")
PARTS_SUFFIX = ".parts"
MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--images", required=True, metavar="DIR_OR_DATASET",
                        help="folder of image files (item id = file name stem) or a tfvrec data set directory")
    parser.add_argument("--hub", required=True, metavar="HANDLE",
                        help="TF-Hub handle: a local SavedModel / TF-Hub module directory, or a URL when online")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output .npz feature file; with a data set, a bare NAME means <dataset>/features/NAME.npz")
    parser.add_argument("--skip-bad", action="store_true",
                        help="report unreadable/corrupt image files and skip them (default: fail on the first)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per model call (default 32)")
    parser.add_argument("--signature", default=None, metavar="NAME",
                        help="model function to call: a signature name or __call__ (default: the 'features' "
                             "signature if present, else __call__, else 'default'/'serving_default')")
    parser.add_argument("--output-key", default=None, metavar="KEY",
                        help="output to keep when the signature returns several (default: 'features' or the only one)")
    parser.add_argument("--image-size", type=int, default=None, metavar="PIXELS",
                        help="input side length for models whose signature does not fix it (default 224)")
    parser.add_argument("--pixel-range", choices=sorted(PIXEL_RANGES), default="0,1",
                        help="value range of float inputs the model expects (default 0,1, the TF-Hub convention)")
    parser.add_argument("--overwrite", action="store_true",
                        help="ignore an existing output file and partial results: extract everything again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def register_cli(subparsers):
    """Add the ``features`` sub-command to the project's argparse CLI (``args.func(args)`` runs it)."""
    parser = subparsers.add_parser(
        "features", help="extract item-keyed image feature vectors with a TF-Hub model",
        description="Extract item-keyed image feature vectors with a TF-Hub model (see docs/features.md).")
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``tfvrec features`` from parsed arguments. Raises `DataError` on bad input."""
    summary = extract_features(
        images=args.images, handle=args.hub, out=args.out, skip_bad=args.skip_bad,
        batch_size=args.batch_size, signature=args.signature, output_key=args.output_key,
        image_size=args.image_size, pixel_range=args.pixel_range, overwrite=args.overwrite,
        progress=not args.no_progress)
    print(summary.describe())
    return 0


def main(argv=None):
    """``python -m tfvrec.features.extract ...`` (the same options as ``tfvrec features``)."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m tfvrec.features.extract", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

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
    from tfvrec.data.dataset import load_dataset

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
# The model
# ---------------------------------------------------------------------------------------------

class HubExtractor:
    """Loads a TF-Hub handle and turns batches of ``[0, 1]`` images into ``[n, d]`` vectors."""

    def __init__(self, handle, signature=None, output_key=None, image_size=None, pixel_range="0,1", loaded=None):
        """``loaded``: the object ``hub.load(handle)`` returned, if the caller already has it."""
        import tensorflow as tf
        from tfvrec.features import import_hub

        self.handle = handle
        if loaded is not None:
            self.obj = loaded
        else:
            hub = import_hub()
            try:
                self.obj = hub.load(handle)
            except Exception as e:  # missing dir, not a SavedModel, offline URL, ...
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise DataError(handle, f"cannot load this TF-Hub handle ({first})") from None
        self.signature, self.fn, spec, self.input_name = self._choose_function(signature)
        self.output_key = output_key
        self.input_dtype = spec.dtype if spec is not None else tf.float32
        shape = spec.shape if spec is not None and spec.shape.rank is not None else tf.TensorShape([None] * 4)
        if shape.rank != 4 or (shape[-1] is not None and shape[-1] != 3):
            raise DataError(handle, f"{self.signature} takes input of shape {shape}; expected RGB images "
                                    "[batch, height, width, 3]")
        fixed = [d for d in shape[1:3] if d is not None]
        if fixed:
            if len(fixed) != 2 or fixed[0] != fixed[1]:
                raise DataError(handle, f"{self.signature} takes non-square images {shape}; not supported")
            if image_size is not None and image_size != fixed[0]:
                raise DataError(handle, f"{self.signature} takes {fixed[0]}x{fixed[0]} images, "
                                        f"but --image-size {image_size} was given")
            self.image_size = int(fixed[0])
        else:
            self.image_size = int(image_size or DEFAULT_IMAGE_SIZE)
        if self.input_dtype not in (tf.float32, tf.uint8):
            raise DataError(handle, f"{self.signature} takes {self.input_dtype.name} images; "
                                    "only float32 and uint8 inputs are supported")
        self.pixel_range = PIXEL_RANGES[pixel_range]

    def _choose_function(self, name):
        signatures = dict(getattr(self.obj, "signatures", {}) or {})
        call = getattr(self.obj, "__call__", None)
        call = call if hasattr(call, "concrete_functions") else None
        if name is None:
            for candidate in ("features", "__call__", "default", "serving_default"):
                if candidate == "__call__" and call is not None or candidate in signatures:
                    name = candidate
                    break
            else:
                raise DataError(self.handle, "the model has no signatures and no __call__ function to extract with")
        if name == "__call__":
            if call is None:
                raise DataError(self.handle, f"the model has no __call__ function; signatures: {sorted(signatures)}")
            specs = []
            for concrete in call.concrete_functions:
                args, _ = concrete.structured_input_signature
                if args and hasattr(args[0], "shape"):
                    specs.append(args[0])
            return name, call, (specs[0] if specs else None), None
        if name not in signatures:
            raise DataError(self.handle, f"the model has no signature {name!r}; available: "
                                         f"{sorted(signatures) + (['__call__'] if call is not None else [])}")
        fn = signatures[name]
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise DataError(self.handle, f"signature {name!r} takes inputs {sorted(kwargs)}; expected a single "
                                         "image input")
        (input_name, spec), = kwargs.items()
        return name, fn, spec, input_name

    def __call__(self, images):
        """``images``: float32 tensor ``[n, size, size, 3]`` in ``[0, 1]``; returns ``[n, d]`` float32."""
        import tensorflow as tf

        if self.input_dtype == tf.uint8:
            images = tf.cast(tf.round(images * 255.0), tf.uint8)
        elif self.pixel_range != (0.0, 1.0):
            low, high = self.pixel_range
            images = images * (high - low) + low
        if self.input_name is None:
            out = self.fn(images)
        else:
            out = self.fn(**{self.input_name: images})
        if isinstance(out, dict):
            keys = sorted(out)
            key = self.output_key
            if key is None:
                key = keys[0] if len(keys) == 1 else next((k for k in FEATURE_KEYS if k in out), None)
            if key not in out:
                raise DataError(self.handle, f"{self.signature} returns {keys}; choose one with --output-key")
            out = out[key]
        elif self.output_key is not None:
            raise DataError(self.handle, f"{self.signature} returns a single tensor; --output-key does not apply")
        out = np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float32)
        if out.ndim != 2 or len(out) != int(images.shape[0]):
            raise DataError(self.handle, f"{self.signature} returns shape {out.shape} for {int(images.shape[0])} "
                                         "images; expected [batch, d] feature vectors (pick a feature-vector "
                                         "model or signature)")
        return out

    def identity(self):
        handle = os.path.abspath(self.handle) if os.path.exists(self.handle) else self.handle
        return {"handle": handle, "signature": self.signature, "output_key": self.output_key,
                "image_size": self.image_size, "pixel_range": list(self.pixel_range)}


# ---------------------------------------------------------------------------------------------
# The tf.data pipeline
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
# Extraction with resumable partial results
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    out: str
    total: int  # items with an image in the source
    reused: int  # already had a vector (output file or parts)
    extracted: int
    bad: list  # (path, reason) of skipped files
    dim: int
    seconds: float  # extraction loop (model loaded)
    load_seconds: float
    without_image: int = 0

    @property
    def images_per_second(self):
        return self.extracted / self.seconds if self.seconds > 0 else float("nan")

    def describe(self):
        text = f"{self.out}: {self.reused + self.extracted} feature vectors (d={self.dim})"
        if self.extracted:
            text += (f"; extracted {self.extracted} in {self.seconds:.1f}s "
                     f"({self.images_per_second:.1f} images/s, model load {self.load_seconds:.1f}s)")
        else:
            text += "; no new vectors"
        if self.reused:
            text += f"; {self.reused} already present"
        if self.bad:
            text += f"; skipped {len(self.bad)} unreadable image file(s)"
        if self.without_image:
            text += f"; {self.without_image} data set item(s) have no image"
        return text


def _parts_dir(out):
    return out + PARTS_SUFFIX


def _load_parts(parts_dir):
    """``{item: vector}`` from the finished batches in ``parts_dir``."""
    found = {}
    for shard in sorted(glob.glob(os.path.join(parts_dir, "part-*.npz"))):
        ids, vectors = features_lib.load_features(shard)
        found.update(zip(ids.tolist(), vectors))
    return found


def _check_manifest(parts_dir, identity):
    path = os.path.join(parts_dir, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != identity:
            raise DataError(parts_dir, f"holds partial results of a different extraction ({previous}); "
                                       f"this run is {identity}. Delete the folder or pass --overwrite")
    else:
        os.makedirs(parts_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(identity, f, indent=1)
        os.replace(tmp, path)


def extract_features(images, handle, out, skip_bad=False, batch_size=32, signature=None, output_key=None,
                     image_size=None, pixel_range="0,1", overwrite=False, progress=True, log=None, loaded=None):
    """Extract feature vectors for every image of ``images`` that ``out`` does not have yet.

    ``loaded`` optionally passes the already loaded model (``hub.load(handle)``).

    Returns a `Summary`. Raises `DataError` naming the first unreadable image (unless
    ``skip_bad``), or on a bad folder, data set, handle or output file.
    """
    if batch_size < 1:
        raise DataError("--batch-size", f"must be at least 1, got {batch_size}")
    log = log or (lambda message: print(message, file=sys.stderr))
    source = resolve_images(images)
    out = resolve_out(out, source)
    parts_dir = _parts_dir(out)
    if overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)

    done = {}  # item -> vector already available
    existing_ids, existing = np.array([], dtype=str), None
    if os.path.exists(out) and not overwrite:
        existing_ids, existing = features_lib.load_features(out)
        done.update(zip(existing_ids.tolist(), existing))
    if os.path.isdir(parts_dir):
        done.update(_load_parts(parts_dir))
    todo = [p for p, item in enumerate(source.item_ids) if item not in done]
    reused = len(source.item_ids) - len(todo)
    dim = len(next(iter(done.values()))) if done else 0

    if not todo:
        if os.path.isdir(parts_dir):  # a run killed after its last batch, before the merge
            dim = _merge(out, source, done, existing_ids, parts_dir)
        return Summary(out=out, total=len(source.item_ids), reused=reused, extracted=0, bad=[], dim=dim,
                       seconds=0.0, load_seconds=0.0, without_image=source.without_image)

    start = time.perf_counter()
    extractor = HubExtractor(handle, signature=signature, output_key=output_key, image_size=image_size,
                             pixel_range=pixel_range, loaded=loaded)
    load_seconds = time.perf_counter() - start
    _check_manifest(parts_dir, extractor.identity())
    shard_number = len(glob.glob(os.path.join(parts_dir, "part-*.npz")))

    from tqdm import tqdm

    bad, extracted, expected = [], 0, 0  # expected: index into todo of the next item due
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="features", disable=not progress, file=sys.stderr,
              dynamic_ncols=True, mininterval=0.5) as bar:

        def report_bad(upto):
            nonlocal expected
            new = []
            while expected < upto:
                position = todo[expected]
                reason = diagnose(source.paths[position]) if source.paths is not None else "cannot decode"
                new.append((source.name_of(position), reason, source.item_ids[position]))
                expected += 1
            return new

        for positions, batch in make_dataset(source, todo, extractor.image_size, batch_size):
            positions = positions.numpy()
            new_bad = []
            for position in positions:  # positions arrive in order; a gap is a dropped (bad) file
                new_bad += report_bad(todo.index(position, expected))
                expected += 1
            vectors = extractor(batch)
            if dim and vectors.shape[1] != dim:
                raise DataError(out, f"holds {dim}-d vectors but this model gives {vectors.shape[1]}-d; "
                                     "use another --out or pass --overwrite")
            dim = vectors.shape[1]
            features_lib.save_features(os.path.join(parts_dir, f"part-{shard_number:06d}.npz"),
                                       [source.item_ids[p] for p in positions], vectors)
            shard_number += 1
            extracted += len(positions)
            bar.update(len(positions) + len(new_bad))
            _handle_bad(new_bad, bad, skip_bad, source, bar)
        new_bad = report_bad(len(todo))
        bar.update(len(new_bad))
        _handle_bad(new_bad, bad, skip_bad, source, bar)
    seconds = time.perf_counter() - start

    if bad:
        log(f"skipped {len(bad)} unreadable image file(s): " + ", ".join(os.path.basename(p) for p, _ in bad[:10])
            + (" ..." if len(bad) > 10 else ""))
    if not extracted and not done:
        raise DataError(source.dataset_path or images, "none of the images could be read")
    done.update(_load_parts(parts_dir))
    dim = _merge(out, source, done, existing_ids, parts_dir)
    return Summary(out=out, total=len(source.item_ids), reused=reused, extracted=extracted, bad=bad, dim=dim,
                   seconds=seconds, load_seconds=load_seconds, without_image=source.without_image)


def _handle_bad(new_bad, bad, skip_bad, source, bar):
    for path, reason, item in new_bad:
        if not skip_bad:
            bar.close()
            raise DataError(path, f"{reason}; fix or remove the file, or pass --skip-bad to skip unreadable images",
                            key=item if source.dataset_path is not None else None)
        bar.write(f"skipping {path}: {reason}", file=sys.stderr)
        bad.append((path, reason))


def _merge(out, source, vectors_by_item, existing_ids, parts_dir):
    """Write every known vector to ``out`` (source order, then older extra items) and drop the parts."""
    order = [i for i in source.item_ids if i in vectors_by_item]
    in_source = set(source.item_ids)
    order += [i for i in existing_ids.tolist() if i not in in_source and i in vectors_by_item]
    dims = {len(vectors_by_item[i]) for i in order}
    if len(dims) > 1:
        raise DataError(out, f"partial results have different dimensions {sorted(dims)}; "
                             "pass --overwrite to extract everything again")
    vectors = np.stack([vectors_by_item[i] for i in order]).astype(np.float32)
    features_lib.save_features(out, order, vectors)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return vectors.shape[1]


if __name__ == "__main__":
    sys.exit(main())
