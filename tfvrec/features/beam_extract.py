"""``tfvrec features --runner beam``: the extraction as an Apache Beam pipeline.

The same images, preprocessing (`tfvrec.features.images.preprocess_image`) and model
(`tfvrec.features.hub.HubExtractor`) as the in-process extraction, as a pipeline that
any Beam runner parallelises — the DirectRunner on one machine (``--beam-arg
--direct_num_workers=N --beam-arg --direct_running_mode=multi_processing``), Dataflow,
Flink or Spark for a collection of any size::

    item positions → Reshuffle → batches of --batch-size → extract (model loaded once per
    worker, in ``setup``) → (item, vector) → keyed by shard (CRC-32 of the item id) →
    one ``.npz`` per shard

The output is a sharded feature set, ``<name>-00000-of-0000S.npz`` … (the project's
feature format, `tfvrec.data.features`), which ``data.features: <name>`` reads like a
single file. Shards are written into a temporary folder beside the output and moved into
place only when the whole pipeline has succeeded, replacing an older set of that name:
a failed run leaves the previous features untouched. An unreadable image stops the run
with its file name, unless ``--skip-bad`` (each skipped file is reported by name).

Beam is an optional dependency: ``pip install 'tfvrec[beam]'``.
"""
import os
import shutil
import tempfile
import time
import zlib

import numpy as np

from tfvrec.data import features as features_lib
from tfvrec.beam_support import import_beam
from tfvrec.data.errors import DataError
from tfvrec.features.hub import HubExtractor
from tfvrec.features.images import (check_outputs, decode_image_file, diagnose, file_problem, preprocess_image,
                                    resolve_images, resolve_out)
from tfvrec.features.images import max_image_pixels as check_max_pixels


def shard_of(item, num_shards):
    """The shard of an item id: CRC-32 of its UTF-8 bytes modulo the shard count (stable everywhere)."""
    return zlib.crc32(str(item).encode("utf-8")) % num_shards


def _make_dofn(beam):
    class ExtractBatch(beam.DoFn):
        """Positions → ``(item id, vector)``; unreadable images → the ``bad`` output."""

        def __init__(self, images, extractor_options, max_pixels=None):
            self.images, self.extractor_options, self.max_pixels = images, extractor_options, max_pixels

        def setup(self):
            self.source = resolve_images(self.images)
            self.extractor = HubExtractor(**self.extractor_options)

        def process(self, positions):
            import tensorflow as tf

            size = self.extractor.image_size
            good, images = [], []
            for position in positions:
                try:
                    if self.source.paths is not None:
                        problem = file_problem(self.source.paths[position], self.max_pixels)
                        if problem is not None:  # (never opened: a FIFO would block the worker)
                            raise ValueError(problem)
                        image = decode_image_file(self.source.paths[position], self.max_pixels)
                    else:
                        image = tf.constant(self.source.pixels[position])
                    images.append(preprocess_image(image, size))
                    good.append(position)
                except (tf.errors.OpError, ValueError):
                    path = self.source.name_of(position)
                    reason = diagnose(path, self.max_pixels) if self.source.paths is not None else "cannot decode"
                    yield beam.pvalue.TaggedOutput("bad", (path, reason, self.source.item_ids[position]))
            if good:
                vectors = self.extractor(tf.stack(images))
                for position, vector in zip(good, vectors):
                    yield self.source.item_ids[position], np.asarray(vector, np.float32)
    return ExtractBatch


def _write_shard(keyed, tmp_dir, stem_name, num_shards):
    shard, rows = keyed
    rows = sorted(rows, key=lambda r: r[0])
    path = os.path.join(tmp_dir, features_lib.shard_path(stem_name, shard, num_shards))
    features_lib.save_features(path, [r[0] for r in rows], np.stack([r[1] for r in rows]))
    return shard


def extract_with_beam(images, handle, out, num_shards=4, batch_size=32, skip_bad=False, signature=None,
                      output_key=None, image_size=None, pixel_range="0,1", runner="DirectRunner", beam_args=(),
                      max_image_pixels=None):
    """Run the pipeline; returns a dict summary (vectors, shards, bad files, seconds, out stem)."""
    if num_shards < 1:
        raise DataError("--num-shards", f"must be at least 1, got {num_shards}")
    if batch_size < 1:
        raise DataError("--batch-size", f"must be at least 1, got {batch_size}")
    check_max_pixels(max_image_pixels)  # (a bad --max-image-pixels fails here, not in a worker)
    beam = import_beam("or use the in-process extraction: --runner local")
    from apache_beam.options.pipeline_options import PipelineOptions
    source = resolve_images(images)
    out = resolve_out(out, source)
    check_outputs(out, source, handle)  # (<stem>.npz is replaced: only a feature file, never an input)
    stem = out[:-len(".npz")]
    directory, name = os.path.dirname(os.path.abspath(stem)), os.path.basename(stem)
    options = {"handle": handle, "signature": signature, "output_key": output_key, "image_size": image_size,
               "pixel_range": pixel_range}
    HubExtractor(**options)  # a bad handle fails here, before any worker starts
    os.makedirs(directory, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".beam-{name}-", dir=directory)
    started = time.perf_counter()
    bad_path = os.path.join(tmp_dir, "bad.tsv")
    try:
        with beam.Pipeline(options=PipelineOptions(list(beam_args), runner=runner)) as pipeline:
            outputs = (pipeline
                       | "Positions" >> beam.Create(list(range(len(source.item_ids))))
                       | "Spread" >> beam.Reshuffle()
                       | "Batch" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
                       | "Extract" >> beam.ParDo(_make_dofn(beam)(os.path.abspath(images), options,
                                                                   max_image_pixels)).with_outputs(
                           "bad", main="vectors"))
            _ = (outputs.vectors
                 | "KeyByShard" >> beam.Map(lambda row: (shard_of(row[0], num_shards), row))
                 | "GroupShards" >> beam.GroupByKey()
                 | "WriteShards" >> beam.Map(_write_shard, tmp_dir, name, num_shards))
            _ = (outputs.bad
                 | "CollectBad" >> beam.combiners.ToList()
                 | "WriteBad" >> beam.Map(lambda rows: open(bad_path, "w").write(
                     "".join(f"{p}\t{r}\t{i}\n" for p, r, i in sorted(rows)))))
        bad = [line.rstrip("\n").split("\t") for line in open(bad_path)] if os.path.exists(bad_path) else []
        if bad and not skip_bad:
            path, reason, item = bad[0]
            raise DataError(path, f"{reason}; fix or remove the file, or pass --skip-bad to skip unreadable images "
                                  f"({len(bad)} unreadable in all; nothing was written)",
                            key=item if source.dataset_path is not None else None)
        written = [f for f in os.listdir(tmp_dir) if f.endswith(".npz")]
        if not written:
            raise DataError(source.dataset_path or images, "none of the images could be read")
        dim = features_lib.load_features(os.path.join(tmp_dir, written[0]))[1].shape[1]
        for shard in range(num_shards):  # a shard no item hashed to is written empty: the set is complete
            path = os.path.join(tmp_dir, features_lib.shard_path(name, shard, num_shards))
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    np.savez(f, item=np.zeros(0, "<U1"), features=np.zeros((0, dim), np.float32))
        # Replace the older set of this name (a single file or shards of any count), then move in.
        if os.path.exists(stem + ".npz"):
            os.remove(stem + ".npz")
        for old in os.listdir(directory):
            match = features_lib.SHARD_NAME.match(old)
            if match and match.group("name") == name:
                os.remove(os.path.join(directory, old))
        for shard in range(num_shards):
            file = features_lib.shard_path(name, shard, num_shards)
            os.replace(os.path.join(tmp_dir, file), os.path.join(directory, file))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    vectors = features_lib.load_feature_set(stem)[0].size
    return {"out": stem, "vectors": int(vectors), "shards": num_shards, "bad": bad, "dim": int(dim),
            "seconds": time.perf_counter() - started, "without_image": source.without_image}


def describe(summary):
    text = (f"{summary['out']}-*-of-{summary['shards']:05d}.npz: {summary['vectors']} feature vectors "
            f"(d={summary['dim']}) in {summary['shards']} shards, {summary['seconds']:.1f}s (Beam)")
    if summary["bad"]:
        text += f"; skipped {len(summary['bad'])} unreadable image file(s): " + ", ".join(
            os.path.basename(b[0]) for b in summary["bad"][:10])
    if summary["without_image"]:
        text += f"; {summary['without_image']} data set item(s) have no image"
    return text
