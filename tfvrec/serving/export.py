"""``tfvrec export`` / ``tfvrec index``: a trained run → a TF Serving SavedModel version.

Layout (what ``tensorflow_model_server --model_config_file`` loads)::

    export/models.config                 model_config_list, one entry per exported model
    export/models/<name>/<version>/      written by `tfvrec.serving.versions.write_version`

The run's model contributes its `ServingParts` through its package's export adapter
(``tfvrec/models/<name>/serving.py``, `tfvrec.serving.parts`); they become a
`tfvrec.serving.module.ServingModule` (the in-graph request logic) unless the adapter
returns a serving module of its own. Signatures are documented in
`tfvrec.serving.module` and ``export/README.md``.
"""
import json
import os
import time

from absl import logging

from tfvrec import registry
from tfvrec.runs import Run
from tfvrec.serving.model_config import METADATA_FILE, existing_versions, export_metadata, update_models_config
from tfvrec.serving.module import PAD_SCORE, ServingModule
from tfvrec.serving.parts import ExportError, ServingParts
from tfvrec.serving.versions import write_version
from tfvrec import config as config_lib
from tfvrec.data.features import load_features

__all__ = ["ExportError", "PAD_SCORE", "export_model", "export_run", "export_shards", "serving_module",
           "apply_export_overrides"]


def serving_module(config, dataset, model, new_items=None, replace_items=False):
    """The serving module of an in-memory model: its adapter's parts in a `ServingModule`
    (or the module the adapter builds itself)."""
    spec = registry.model_spec(config.model.name)
    if not spec.serving:
        raise ExportError(f"model {config.model.name!r} has no serving adapter; exportable models: "
                          f"{[n for n, s in registry.models.items() if s.serving]}")
    built = registry.resolve(spec.serving)(config, dataset, model, new_items=new_items, replace_items=replace_items)
    return ServingModule(built, config.export) if isinstance(built, ServingParts) else built


def default_models_config(out_dir):
    """``export/models/<name>`` → ``export/models.config``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(out_dir))), "models.config")


def model_name_of(out_dir):
    name = os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
    if not name or name.startswith("."):
        raise ExportError(f"--out {out_dir!r}: the last path component names the model; got {name!r}")
    return name


# ----------------------------------------------------------------------------- entry points

def export_model(config, dataset, model, out_dir, version=None, models_config=None, new_items=None,
                 replace_items=False, run_dir="", verify=True, run_state=None):
    """Export an in-memory model; returns a dict describing the written version (``run_state``: the
    `RunState` of the run it comes from, recorded in the version's metadata)."""
    name = model_name_of(out_dir)
    start = time.time()
    module = serving_module(config, dataset, model, new_items=new_items, replace_items=replace_items)
    build_seconds = time.time() - start
    metadata = {"model_name": name, "model": config.model.name, "run": os.path.abspath(run_dir) if run_dir else "",
                "dataset": getattr(dataset, "name", "")}
    metadata.update(module.describe())
    if run_state is not None:
        metadata.update(run_finished=bool(run_state.done), run_state=run_state.describe())
    metadata.update(module_build_seconds=round(build_seconds, 3),
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    version, path = write_version(module, out_dir, version=version, metadata=metadata, verify=verify)
    config_path = models_config if models_config is not None else default_models_config(out_dir)
    if config_path:
        try:
            update_models_config(config_path, name, out_dir)
        except ValueError as e:
            raise ExportError(f"version {version} was written to {path}, but {e}") from None
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    logging.info("Exported %s version %d to %s (%s index, %.1f MB)", name, version, path, module.index_kind,
                 size / 2 ** 20)
    return {"name": name, "version": version, "path": path, "models_config": config_path, "bytes": size,
            "index_build_seconds": getattr(module, "index_build_seconds", 0.0),
            "signatures": sorted(module.signature_functions),
            "custom_ops": json.load(open(os.path.join(path, "assets.extra", METADATA_FILE)))["custom_ops"]}


# Settings `tfvrec index` carries over from the version it follows (unless given again).
INHERITED_SETTINGS = ("default_k", "exclude_seen", "rerank_candidates")


def apply_export_overrides(config, index=None, max_k=None, sets=()):
    for assignment in sets:
        if not assignment.split("=", 1)[0].strip().startswith("export."):
            raise config_lib.ConfigError(f"--set {assignment}: only export.* keys can change at export time")
        config_lib.override(config, config_lib.parse_set(assignment), source=f"--set {assignment}")
    if index is not None:
        config_lib.override(config, {"export": {"index": index}}, source="--index")
    if max_k is not None:
        config_lib.override(config, {"export": {"max_k": max_k}}, source="--max_k")
    return config


def export_shards(run_dir, out_dir, num_shards, **options):
    """Export ``num_shards`` models ``<out_dir>-0 …``, shard s indexing the items of shard s
    (`tfvrec.serving.sharded`); returns the list of `export_run` results."""
    if num_shards < 2:
        raise ExportError(f"--shards must be at least 2, got {num_shards}")
    sets = list(options.pop("sets", ()))
    base = os.path.normpath(out_dir)
    return [export_run(run_dir, f"{base}-{shard}", sets=sets + [f"export.num_shards={num_shards}",
                                                                  f"export.shard={shard}"], **options)
            for shard in range(num_shards)]


def export_run(run_dir, out_dir, version=None, index=None, max_k=None, sets=(), models_config=None,
               new_items_path=None, replace_items=False, verify=True, allow_unfinished=None):
    """Export the best checkpoint of a trained run directory (``tfvrec export`` / ``tfvrec index``).

    An unfinished run is refused with ``allow_unfinished=False`` (the CLI's default) and
    exported with a warning otherwise; the version's metadata records the run's state."""
    run = Run(run_dir)
    config, dataset, model = run.load(allow_unfinished=allow_unfinished)
    if new_items_path is not None:  # `tfvrec index`: keep the export settings of the version it follows
        versions = existing_versions(os.path.abspath(out_dir))
        previous = export_metadata(os.path.join(os.path.abspath(out_dir), str(versions[-1]))) if versions else {}
        inherited = [f"export.{key}={previous[key]}" for key in INHERITED_SETTINGS if key in previous]
        if index is None and "index" in previous:
            index = previous["index"]
        if max_k is None and "max_k" in previous:
            max_k = previous["max_k"]
        sets = inherited + list(sets)
    apply_export_overrides(config, index=index, max_k=max_k, sets=sets)
    new_items = None
    if new_items_path is not None:
        new_items = load_features(new_items_path)
    return export_model(config, dataset, model, out_dir, version=version, models_config=models_config,
                        new_items=new_items, replace_items=replace_items, run_dir=run_dir, verify=verify,
                        run_state=run.state)
