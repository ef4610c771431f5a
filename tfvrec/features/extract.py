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

The images and their pipeline are `tfvrec.features.images`, the model `tfvrec.features.hub`;
TensorFlow and TF-Hub are imported only when a run starts. See ``docs/features.md``.
"""
import argparse
import dataclasses
import glob
import json
import os
import shutil
import sys
import time

import numpy as np

from tfvrec import input_files, outputs
from tfvrec.data import features as features_lib
from tfvrec.data.errors import DataError
from tfvrec.features.hub import PIXEL_RANGES, HubExtractor
from tfvrec.features.images import (ImageSource, check_outputs, decode_image_file, diagnose,  # noqa: F401
                                    is_feature_file, make_dataset, preprocess_image, resolve_images, resolve_out)
from tfvrec.features.images import PARTS_SUFFIX
from tfvrec.features.images import max_image_pixels as max_image_pixels_of
from tfvrec import beam_support
from tfvrec.features import beam_extract

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
    parser.add_argument("--max-image-pixels", type=int, default=None, metavar="N",
                        help="refuse (before decoding) an image of more than N pixels (default: "
                             "$TFVREC_MAX_IMAGE_PIXELS or 50 million)")
    parser.add_argument("--runner", default="local", metavar="RUNNER",
                        help="'local' (in-process, resumable; default) or an Apache Beam runner (beam = DirectRunner, "
                             "DataflowRunner, FlinkRunner, SparkRunner, ...): a pipeline writing a sharded feature set")
    parser.add_argument("--num-shards", type=int, default=4, metavar="S", help="Beam only: output shards (default 4)")
    parser.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                        help="Beam only: a pipeline option passed through (repeat), "
                             "e.g. --beam-arg=--direct_num_workers=2")
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
    if args.runner != "local":
        summary = beam_extract.extract_with_beam(
            images=args.images, handle=args.hub, out=args.out, num_shards=args.num_shards, batch_size=args.batch_size,
            skip_bad=args.skip_bad, signature=args.signature, output_key=args.output_key,
            image_size=args.image_size, pixel_range=args.pixel_range, runner=beam_support.runner_name(args.runner),
            beam_args=args.beam_arg, max_image_pixels=args.max_image_pixels)
        print(beam_extract.describe(summary))
        return 0
    summary = extract_features(
        images=args.images, handle=args.hub, out=args.out, skip_bad=args.skip_bad,
        batch_size=args.batch_size, signature=args.signature, output_key=args.output_key,
        image_size=args.image_size, pixel_range=args.pixel_range, overwrite=args.overwrite,
        progress=not args.no_progress, max_image_pixels=args.max_image_pixels)
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
        previous = input_files.read_json(path, what="the manifest of partial results")
        if previous != identity:
            raise DataError(parts_dir, f"holds partial results of a different extraction ({previous}); "
                                       f"this run is {identity}. Delete the folder or pass --overwrite")
    else:
        if not os.path.isdir(parts_dir):
            tmp_dir = outputs.temporary(parts_dir)
            outputs.publish(tmp_dir, parts_dir, "feature_parts")  # (marked: the only folder --overwrite removes)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(identity, f, indent=1)
        os.replace(tmp, path)


def extract_features(images, handle, out, skip_bad=False, batch_size=32, signature=None, output_key=None,
                     image_size=None, pixel_range="0,1", overwrite=False, progress=True, log=None, loaded=None,
                     max_image_pixels=None):
    """Extract feature vectors for every image of ``images`` that ``out`` does not have yet.

    ``loaded`` optionally passes the already loaded model (``hub.load(handle)``). ``max_image_pixels``:
    larger images are refused before decoding (default ``$TFVREC_MAX_IMAGE_PIXELS`` or 50 million).

    Returns a `Summary`. Raises `DataError` naming the first unreadable image (unless
    ``skip_bad``), or on a bad folder, data set, handle or output file.
    """
    if batch_size < 1:
        raise DataError("--batch-size", f"must be at least 1, got {batch_size}")
    max_image_pixels = max_image_pixels_of(max_image_pixels)
    log = log or (lambda message: print(message, file=sys.stderr))
    source = resolve_images(images)
    out = resolve_out(out, source)
    parts_dir = _parts_dir(out)
    check_outputs(out, source, handle)
    if overwrite and os.path.isdir(parts_dir):
        shutil.rmtree(parts_dir)

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
                reason = (diagnose(source.paths[position], max_image_pixels) if source.paths is not None
                          else "cannot decode")
                new.append((source.name_of(position), reason, source.item_ids[position]))
                expected += 1
            return new

        for positions, batch in make_dataset(source, todo, extractor.image_size, batch_size, max_image_pixels):
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
