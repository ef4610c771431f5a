"""Write a model's triplet records: in process (``runner="local"``) or with Apache Beam.

Both write the same records in the same order (the in-process stream's), into a temporary
folder beside ``out`` that replaces the older record set only when everything, manifest
last, is written: a failed run leaves the previous records untouched.
"""
import shutil
import time

from tfvrec import beam_support, outputs, registry
from tfvrec import config as config_lib
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.triplets import manifest as manifest_lib
from tfvrec.triplets import shards
from tfvrec.triplets import beam_pipeline
from tfvrec.data.resolve import expand_path


def triplet_source(config):
    """The model's `TripletSource` for ``config`` (ConfigError for a model without one)."""
    spec = registry.model_spec(config.model.name)
    if not spec.triplets:
        with_records = [name for name, s in registry.models.items() if s.triplets]
        raise ConfigError(f"model {config.model.name!r} samples no triplets to write as records; "
                          f"models that do: {with_records}")
    return registry.resolve(spec.triplets).source(config)


def add_counts(total, counts):
    for name, value in counts.items():
        total[name] = total.get(name, 0) + int(value)
    return total


def write_local(source, directory, num_shards):
    """The in-process stream into shards; ``(per-shard counts, counters, facts)``."""
    writer = shards.ShardWriter(directory, source.schema, num_shards, source.planned)
    counters = {}
    for rows in source.stream():
        columns = source.columns(rows)
        writer.write(columns)
        add_counts(counters, source.count(columns))
    return writer.close(), counters, {}


def write_triplets(config, out, runner="local", num_shards=4, beam_args=()):
    """Write ``config``'s training triplets to ``out``; returns the manifest (a dict).

    ``runner``: "local", "beam" (Beam's DirectRunner) or a Beam runner's name."""
    if num_shards < 1:
        raise DataError("--num_shards", f"must be at least 1, got {num_shards}")
    source = triplet_source(config)
    started = time.perf_counter()
    # An older record set at ``out`` is replaced; any other non-empty folder, or the data, never is.
    data = config.data
    out = outputs.prepare(out, "triplets", overwrite=True, inputs={
        "data.path": expand_path(data.path) if data.source == "directory" else "",
        "data.raw_path": expand_path(data.raw_path) if data.source == "import" else ""})
    identity = source.identity  # builds the data set and sampler (errors before any file is written)
    tmp_dir = outputs.temporary(out)
    try:
        if runner == "local":
            counts, counters, facts = write_local(source, tmp_dir, num_shards)
        else:
            counts, counters, facts = beam_pipeline.run(
                source, tmp_dir, num_shards, runner=beam_support.runner_name(runner),
                beam_args=beam_args)
        manifest = {
            "format": manifest_lib.FORMAT, "model": source.model, "seed": config.runtime.seed,
            "schema": source.schema, "runner": runner, "identity": manifest_lib.normalized(identity),
            "config_digest": manifest_lib.config_digest(identity),
            "rows_per_shard": shards.rows_per_shard(source.planned, num_shards),
            "shards": [{"file": shards.shard_name(s, num_shards), "triplets": int(n)} for s, n in enumerate(counts)],
            "counts": {"triplets": int(sum(counts)), "planned": int(source.planned), **counters},
            **source.notes(), **facts,
            "seconds": round(time.perf_counter() - started, 3)}
        if not manifest["counts"]["triplets"]:
            raise DataError(out, "the sampler produced no triplet; nothing was written")
        manifest_lib.write_manifest(tmp_dir, manifest)
        outputs.publish(tmp_dir, out, "triplets", overwrite=True)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return manifest


def describe(manifest, out):
    counts = manifest["counts"]
    short = ""
    if counts["triplets"] != counts["planned"]:
        short = f" (of {counts['planned']:,} planned: the stream ran dry)"
    return (f"{out}: {counts['triplets']:,} {manifest['model']} triplets{short} in {len(manifest['shards'])} shards "
            f"({manifest['runner']}, {manifest['seconds']:.1f}s); train on them with "
            f"--set model.{manifest['model']}.triplets_path={out}")


def run_cli(args):
    """``tfvrec triplets`` (its arguments: `tfvrec.triplets.cli`)."""
    config = config_lib.load_config(config_lib.resolve_config_path(args.config), list(args.set))
    manifest = write_triplets(config, args.out, runner=args.runner, num_shards=args.num_shards,
                                       beam_args=args.beam_arg)
    print(describe(manifest, args.out))
