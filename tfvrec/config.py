"""Experiment configuration: typed dataclasses, named experiments, strict YAML overrides.

In the manner of TF Model Garden (``official/core/exp_factory.py``): a registry maps
an experiment name to a fully populated `ExperimentConfig`; a YAML file names the
experiment and holds only the overrides; ``--set a.b=c`` overrides go on top.
Every override is checked against the dataclasses: an unknown key or a value of
the wrong type fails with the key, where it came from, and the valid choices.
The resolved config is written next to the model as ``params.yaml``.

This module owns the sections every run has (data, trainer, runtime, eval, export).
Section ``model`` is composed from the model packages: ``model.name`` plus one
section per registered model (``model.bpr``, ``model.curatornet``, ...), each the
dataclass its package registers (`tfvrec.registry.ModelSpec.config`). Named
experiments come from the same packages (``ModelSpec.experiments``).
"""
import dataclasses
import difflib
import math
import os
import re
import typing
from typing import Dict, List

import yaml

from tfvrec import registry, safe_yaml
from tfvrec.data.splits import SPLIT_KINDS
from tfvrec.data.synthetic import SyntheticWorldConfig
from tfvrec.errors import ConfigError, quote, shorten
from tfvrec.evaluation.metrics import METRIC_PREFIXES
from tfvrec.evaluation.protocols import parse_protocol
from tfvrec.objectives import LOSSES  # the objectives a model section may name in its ``loss`` key

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "override", "parse_set", "read_params",
           "write_params", "from_dict", "to_dict", "get_experiment", "experiment_names", "resolve_config_path",
           "shipped_configs"]


# ---------------------------------------------------------------------------- sections
def _model_config_class():
    """``model``: ``name`` plus one section per registered model, in name order."""
    registry.load_models()
    fields = [("name", str, dataclasses.field(default="bpr"))]
    for name, spec in registry.models.items():
        fields.append((name, spec.config, dataclasses.field(default_factory=spec.config)))
    cls = dataclasses.make_dataclass("ModelConfig", fields)
    cls.__module__ = __name__  # (make_dataclass takes no module= before Python 3.12)
    return cls


ModelConfig = _model_config_class()


@dataclasses.dataclass
class DataConfig:
    # "synthetic": generate the embedded world; "directory": a data set in the tfvrec
    # format at `path`; "import": run importer `importer` on `raw_path` (cached).
    source: str = "synthetic"
    path: str = ""
    importer: str = ""
    raw_path: str = ""
    import_options: Dict[str, str] = dataclasses.field(default_factory=dict)
    cache_dir: str = "data_cache"
    features: str = ""  # feature set name under <dataset>/features/, for visual models
    # A table whose last row has no final newline (a truncated copy): "error" refuses it;
    # "drop" drops that row and reports it (never trained on half a file silently).
    truncated_rows: str = "error"
    # Which interactions train, validate and test (tfvrec/data/splits.py, `prepare_splits`):
    # "as_imported": the data set's own splits. "new_items": an item-disjoint split of all its
    # interactions pooled: a `test_item_fraction` of the items with interactions become test
    # items and a disjoint `validation_item_fraction` validation items, chosen by a hash of
    # (`split_seed`, item id); their interactions form `test` / `validation`, the rest `train`,
    # so no held-out item is ever trained on. Items nobody interacted with stay in the catalogue,
    # in no split; post tags on held-out items are held out too (dataset.heldout_post_tags).
    split: str = "as_imported"
    # new_items: share of the items with interactions held out as test (0 with validation items: train on every
    # other item, e.g. a run judged later by `tfvrec evaluate --test FILE --protocol new_items`)
    test_item_fraction: float = 0.15
    validation_item_fraction: float = 0.15  # new_items: another, disjoint share for validation (0: none)
    split_seed: int = 0  # new_items: which items are held out
    synthetic: SyntheticWorldConfig = dataclasses.field(default_factory=SyntheticWorldConfig)


@dataclasses.dataclass
class TrainerConfig:
    epochs: int = 20
    batch_size: int = 512  # global batch (split across replicas)
    steps_per_epoch: int = 0  # 0: one pass over the training interactions
    optimizer: str = "lazy_adam"  # Adam with row-sparse embedding updates (training/lazy_adam.py)
    learning_rate: float = 1e-3
    momentum: float = 0.0  # sgd only (CDL's paper: 0.9)
    weight_decay: float = 0.0  # Keras' decoupled weight decay, every optimizer (CDL's paper: 5e-4)
    # Per-epoch factor: epoch e (from 0) trains at learning_rate × decay^e; 1.0 keeps it constant.
    learning_rate_decay: float = 1.0
    negatives_per_positive: int = 1
    checkpoint_every_steps: int = 200  # steps between mid-epoch run-state records (a kill loses at most these)
    keep_checkpoints: int = 2  # checkpoints/ckpt-N kept (the latest epochs); 0 keeps every epoch's
    validation_split: str = "validation"  # early stopping reads this split ("" to disable)
    validation_protocol: str = "sampled:100"
    validation_metric: str = "hr@10"
    validation_max_users: int = 2000  # validate on a fixed random subset to keep epochs fast
    early_stopping_patience: int = 3  # epochs without improvement; 0 disables early stopping
    verbose: int = 1  # Keras progbar: 0 silent, 1 progress bar, 2 one line per epoch
    # TensorBoard beyond scalars (tfvrec/inspect/): per-epoch histograms and a recommendation grid of
    # `tensorboard_users` fixed validation users (top `tensorboard_k`); after training, HParams and the
    # Embedding Projector of the export index's vectors.
    tensorboard_summaries: bool = True
    tensorboard_users: int = 4
    tensorboard_k: int = 8


@dataclasses.dataclass
class RuntimeConfig:
    model_dir: str = "runs/default"
    # "auto": MultiWorkerMirrored when TF_CONFIG names several workers, else Mirrored over
    # all visible GPUs (or over `logical_cpus` CPU devices), else the default strategy.
    distribution_strategy: str = "auto"
    # parameter_server: every variable split over the TF_CONFIG cluster's ps tasks, shards of at
    # least this many bytes (tfvrec/training/parameter_server.py).
    ps_min_shard_bytes: int = 256 << 10
    logical_cpus: int = 0  # >1 splits the CPU into that many logical devices (tests)
    mixed_precision: bool = False  # float16 compute on GPUs
    seed: int = 0
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism
    # TensorFlow's intra- and inter-op thread pools (tf.config.threading), set before the runtime starts:
    # 0 = TensorFlow's default (every core); 1 = one thread each (the benchmarks' one-thread timings).
    threads: int = 0


@dataclasses.dataclass
class EvalConfig:
    split: str = "test"  # held-out split evaluated after training (falls back to validation)
    # full | new_items | sampled:N | candidates:N (tfvrec/evaluation/protocols.py); new_items ranks the
    # held-out items among the items without a training interaction (with data.split: new_items).
    protocols: List[str] = dataclasses.field(default_factory=lambda: ["sampled:100", "full"])
    ks: List[int] = dataclasses.field(default_factory=lambda: [5, 10, 20])
    repeats: int = 10
    seed: int = 0
    baselines: List[str] = dataclasses.field(default_factory=lambda: ["popularity", "random"])
    # metadata_knn / visual_knn (tfvrec/evaluation/content_baselines.py): score(u, i) sums the cosine
    # similarities between i and the user's k most similar training items; 0 = all of them (the profile
    # direction). Defaults: the best k of 0/5/10/20/50 on the validation items of the posters likes
    # (data.split new_items, 15% + 15%, split seeds 0-2; new_items R@20): genres 0, EfficientNet-Lite0 5.
    metadata_knn_k: int = 0
    visual_knn_k: int = 5
    # The trainer of a trained baseline row (bpr, vbpr, twonets: a run inside this run), beside what it
    # takes from this run (the validation rule) and its own experiment (optimizer, batch, ...): row name →
    # comma-separated trainer assignments, e.g. {bpr: "learning_rate=0.003", twonets: "learning_rate=0.001,
    # weight_decay=0.0001"} — the recipe each row was given on the validation items, so a baseline gets the
    # same tuning as the model (`baseline_trainer`).
    baseline_trainer: Dict[str, str] = dataclasses.field(default_factory=dict)
    # Columns of the printed table (each expanded over `ks`, except "auc"); metrics.json
    # always holds every metric. Choices: hr, ndcg, precision, recall, f1, auc.
    table_metrics: List[str] = dataclasses.field(default_factory=lambda: ["hr", "ndcg", "auc"])


@dataclasses.dataclass
class ExportConfig:
    """``tfvrec export``: the serving SavedModel (tfvrec/serving/, export/README.md)."""
    index: str = "brute_force"  # brute_force: stock TF ops only; scann: needs a TF Serving build with ScaNN ops
    max_k: int = 100  # largest K a request may ask for
    default_k: int = 10  # K when a request sends no `k`
    exclude_seen: bool = True  # never return a user's training items (or a cold-start profile's items)
    rerank_candidates: int = 100  # index candidates re-scored exactly (ScaNN; two-stage models like HASC)
    scann_num_leaves: int = 0  # 0: about sqrt(number of items)
    # 0: about 10% of the leaves. On trained BPR-MF factors (docs/benchmarks.md, peers_ann_real) that is
    # recall@10 0.951, and 1% only 0.52; on the clustered synthetic 1M catalogue (peers_ann) 1% suffices.
    scann_leaves_to_search: int = 0
    scann_dimensions_per_block: int = 2
    # Sharded retrieval (`tfvrec.serving.sharded`): this export indexes only the items whose id
    # hashes to shard `shard` of `num_shards` (every item stays known for profiles and scoring).
    num_shards: int = 1
    shard: int = 0


@dataclasses.dataclass
class ExperimentConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)


CHOICES = {
    "model.name": tuple(registry.models.names()),
    "data.source": ("synthetic", "directory", "import"),
    "data.truncated_rows": ("error", "drop"),
    "trainer.validation_split": ("", "train_holdout", "validation", "test"),
    "trainer.verbose": (0, 1, 2),
    "eval.split": ("train", "validation", "test"),
    "trainer.optimizer": ("lazy_adam", "adam", "adagrad", "sgd"),
    "runtime.distribution_strategy": ("auto", "mirrored", "multi_worker_mirrored", "parameter_server", "one_device",
                                      "default"),
    "export.index": ("brute_force", "scann"),
}


# ---------------------------------------------------------------------------- experiments
def experiment_names():
    return registry.experiments.names()


def get_experiment(name, source="<experiment>"):
    """The fully populated `ExperimentConfig` of a named experiment (a model package's ``EXPERIMENTS``)."""
    try:
        overrides = registry.experiments.get(name)
    except LookupError:
        raise ConfigError(f"{source}: unknown experiment {name!r}; registered: {experiment_names()}") from None
    return override(ExperimentConfig(), overrides, source=f"experiment {name!r}")


# ---------------------------------------------------------------------------- overrides
def _type_name(tp):
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value, tp, key, source):
    """Check ``value`` against the field type ``tp`` (int→float widening allowed)."""
    origin = typing.get_origin(tp)
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, item_tp, f"{key}[{n}]", source) for n, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: key '{key}' expects a mapping, got {type(value).__name__} {quote(value)}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{source}: key '{key}' expects {_type_name(tp)}, got {type(value).__name__} {quote(value)}")


def override(config, overrides, source, prefix="", provenance=None):
    """Apply a nested dict of overrides to a dataclass instance in place, strictly.

    ``provenance`` (a dict) receives ``key → source`` for every key set, so a value check
    after all overrides names where the value came from (a file or a ``--set``)."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {quote(overrides)}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    for name, value in overrides.items():
        key = prefix + str(name)
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown key {quote(key)}.{hint} Valid keys here: {sorted(fields)}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            override(current, value, source, prefix=key + ".", provenance=provenance)
            continue
        value = _coerce(value, hints[name], key, source)
        choices = CHOICES.get(key) or (LOSSES if key.startswith("model.") and key.endswith(".loss") else None)
        if choices and value not in choices:
            raise ConfigError(f"{source}: key '{key}' must be one of {list(choices)}, got {quote(value)}")
        setattr(config, name, value)
        if provenance is not None:
            provenance[key] = source
    return config


def baseline_trainer(config, row, trainer):
    """``trainer`` (a `TrainerConfig` of baseline row ``row``'s run) with ``eval.baseline_trainer[row]``'s
    assignments applied (``"learning_rate=0.003,epochs=20"``); unchanged when the row has none."""
    text = config.eval.baseline_trainer.get(row, "")
    for assignment in (a.strip() for a in text.split(",")):
        if assignment:
            override(trainer, parse_set(assignment), source=f"eval.baseline_trainer.{row}", prefix="trainer.")
    return trainer


def parse_set(assignment):
    """``"a.b=c"`` → ``{"a": {"b": <yaml value of c>}}``."""
    if "=" not in assignment:
        raise ConfigError(f"--set {quote(assignment)}: expected KEY=VALUE, e.g. --set trainer.epochs=3")
    key, raw = assignment.split("=", 1)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key.strip()):
        raise ConfigError(f"--set {quote(assignment)}: {quote(key.strip())} is not a config key (dotted names, "
                          "e.g. trainer.epochs)")
    def refused(source, line, reason):  # (aliases, depth, duplicate keys, size: tfvrec.safe_yaml)
        reason = reason[len("not valid YAML "):] if reason.startswith("not valid YAML ") else f"({reason})"
        return ConfigError(f"--set {quote(assignment)}: the value is not valid YAML {reason}; quote a string "
                           "value, e.g. --set 'data.path=\"my dir\"'")
    value = safe_yaml.load(raw, "--set", error=refused) if raw.strip() else ""
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def _read_yaml(path, what="config file"):
    # A regular file of at most 1 MiB, no aliases, bounded depth, no duplicate keys (tfvrec.safe_yaml).
    return safe_yaml.load_file(path, what=f"a YAML {what}")


# Shipped configs: configs/ beside the package in a source checkout, tfvrec/configs/ once installed.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIRS = (os.path.join(os.path.dirname(_PACKAGE_DIR), "configs"), os.path.join(_PACKAGE_DIR, "configs"))


def shipped_configs():
    """``{name: path}`` of the configs shipped with tfvrec (``tfvrec train --config NAME``)."""
    found = {}
    for directory in CONFIG_DIRS:
        if os.path.isdir(directory):
            for entry in sorted(os.listdir(directory)):
                if entry.endswith(".yaml"):
                    found.setdefault(entry[:-5], os.path.join(directory, entry))
    return found


def resolve_config_path(name_or_path):
    """A config file path, or the name of a shipped config (``curatornet_synthetic``)."""
    if os.path.exists(name_or_path):
        return name_or_path
    shipped = shipped_configs()
    name = os.path.basename(name_or_path)
    name = name[:-5] if name.endswith(".yaml") else name
    if os.sep not in name_or_path.rstrip(os.sep) or name_or_path.startswith("configs" + os.sep):
        if name in shipped:
            return shipped[name]
    close = difflib.get_close_matches(name, list(shipped), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{quote(name_or_path)}: config file not found, and not the name of a shipped config.{hint} "
                      f"Shipped: {sorted(shipped)}")


def load_config(path=None, sets=(), experiment=None) -> ExperimentConfig:
    """Resolve a config: experiment defaults ← YAML file ← ``--set`` overrides; every value checked."""
    overrides = {}
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: config file not found")
        overrides = _read_yaml(path) or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level (experiment: NAME, then sections), "
                              f"got {type(overrides).__name__}")
    overrides = dict(overrides)
    name = overrides.pop("experiment", None) or experiment or "bpr"
    if not isinstance(name, str):
        raise ConfigError(f"{path}: key 'experiment' expects a name, got {quote(name)}")
    source = path or "<defaults>"
    provenance = {}
    config = get_experiment(name, source=source)
    override(config, overrides, source=source, provenance=provenance)
    for assignment in sets:
        override(config, parse_set(assignment), source=f"--set {shorten(assignment, 200)}", provenance=provenance)
    validate(config, source=path or "<config>", provenance=provenance)
    return config


def _fields(config, prefix=""):
    """``(key, value, type)`` of every leaf field of a (nested) dataclass."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = prefix + field.name
        if dataclasses.is_dataclass(value):
            yield from _fields(value, key + ".")
        else:
            yield key, value, hints[field.name]


SEED_RANGE = (0, 2 ** 32 - 1)  # numpy's legacy seeding (Keras' set_random_seed) takes no more
INT_LIMIT = 2 ** 53  # no count or size of a run is larger; beyond it values lose meaning in JSON


def _generic_checks(config, where):
    """Checks every field gets: finite numbers, bounded integers, and by name (in any section,
    model sections included): sizes ≥ 1, rates > 0, penalties ≥ 0, seeds in numpy's range."""
    for key, value, tp in _fields(config):
        leaf = key.rsplit(".", 1)[-1]
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where(key)}: key '{key}' must be a finite number, got {v}")
            if isinstance(v, int) and not isinstance(v, bool):
                if abs(v) > INT_LIMIT:
                    raise ConfigError(f"{where(key)}: key '{key}' is out of range, got {quote(v)}")
                if leaf == "seed" and not SEED_RANGE[0] <= v <= SEED_RANGE[1]:
                    raise ConfigError(f"{where(key)}: key '{key}' must be in [0, 2**32 - 1], got {v}")
                if (leaf.endswith("_dim") or leaf.endswith("_units") or leaf == "batch_size") and v < 1:
                    raise ConfigError(f"{where(key)}: key '{key}' must be ≥ 1, got {v}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if leaf.endswith("learning_rate") and v <= 0:
                    raise ConfigError(f"{where(key)}: key '{key}' must be > 0, got {v}")
                if leaf in ("l2", "margin", "init_stddev", "weight_decay") and v < 0:
                    raise ConfigError(f"{where(key)}: key '{key}' must be ≥ 0, got {v}")


def _check_model_dir(path, where):
    if not path.strip():
        raise ConfigError(f"{where('runtime.model_dir')}: key 'runtime.model_dir' is empty; name the run directory")
    probe = os.path.abspath(path)
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise ConfigError(f"{where('runtime.model_dir')}: key 'runtime.model_dir' is {quote(path)}, which is a file, "
                          "not a directory")
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ConfigError(f"{where('runtime.model_dir')}: key 'runtime.model_dir' is {quote(path)}, under the file "
                          f"{quote(probe)}")


def metric_choices():
    return [f"{p}@K" for p in METRIC_PREFIXES] + ["auc"]


def check_metric_name(name):
    """Whether ``name`` is a user–item metric (``hr@10``, ``ndcg@5``, ``auc``, ...)."""
    if name == "auc":
        return True
    prefix, _, k = name.partition("@")
    return prefix in METRIC_PREFIXES and k.isdigit() and int(k) >= 1 and not k.startswith("0")


def validate(config, source="<config>", provenance=None):
    """Every value's range and every name, checked when the config is read (before any work).

    Errors name where the offending value came from: the file, or the ``--set`` override."""
    provenance = provenance or {}

    def where(key):
        return provenance.get(key, source)

    _generic_checks(config, where)
    try:  # the world checks its own cross-field constraints (overrides bypass __post_init__)
        config.data.synthetic.validate()
    except ValueError as e:
        keys = [k for k in provenance if k.startswith("data.synthetic.")]
        raise ConfigError(f"{where(keys[-1]) if keys else source}: data.synthetic: {e}") from None
    if config.data.source == "directory" and not config.data.path:
        raise ConfigError(f"{where('data.source')}: data.source is 'directory' but data.path is empty")
    if config.data.source == "import" and not (config.data.importer and config.data.raw_path):
        raise ConfigError(f"{where('data.source')}: data.source is 'import' but data.importer or data.raw_path is "
                          "empty")
    if not config.data.cache_dir.strip():
        raise ConfigError(f"{where('data.cache_dir')}: key 'data.cache_dir' is empty")
    _check_split(config, where)
    trainer, ev, export = config.trainer, config.eval, config.export
    for key, value, low in (("trainer.epochs", trainer.epochs, 1), ("trainer.batch_size", trainer.batch_size, 1),
                            ("trainer.negatives_per_positive", trainer.negatives_per_positive, 1),
                            ("trainer.checkpoint_every_steps", trainer.checkpoint_every_steps, 1),
                            ("trainer.steps_per_epoch", trainer.steps_per_epoch, 0),
                            ("trainer.keep_checkpoints", trainer.keep_checkpoints, 0),
                            ("trainer.validation_max_users", trainer.validation_max_users, 0),
                            ("trainer.early_stopping_patience", trainer.early_stopping_patience, 0),
                            ("trainer.tensorboard_users", trainer.tensorboard_users, 0),
                            ("trainer.tensorboard_k", trainer.tensorboard_k, 1),
                            ("runtime.logical_cpus", config.runtime.logical_cpus, 0),
                            ("runtime.threads", config.runtime.threads, 0),
                            ("eval.repeats", ev.repeats, 1), ("eval.metadata_knn_k", ev.metadata_knn_k, 0),
                            ("eval.visual_knn_k", ev.visual_knn_k, 0),
                            ("export.max_k", export.max_k, 1),
                            ("export.default_k", export.default_k, 1),
                            ("export.rerank_candidates", export.rerank_candidates, 1),
                            ("export.scann_num_leaves", export.scann_num_leaves, 0),
                            ("export.scann_leaves_to_search", export.scann_leaves_to_search, 0),
                            ("export.scann_dimensions_per_block", export.scann_dimensions_per_block, 1)):
        if value < low:
            raise ConfigError(f"{where(key)}: key '{key}' must be ≥ {low}, got {value}")
    if export.default_k > export.max_k:
        raise ConfigError(f"{where('export.default_k')}: key 'export.default_k' ({export.default_k}) must be ≤ "
                          f"export.max_k ({export.max_k})")
    if not 0 < trainer.learning_rate_decay <= 1:
        raise ConfigError(f"{where('trainer.learning_rate_decay')}: key 'trainer.learning_rate_decay' must be in "
                          f"(0, 1], got {trainer.learning_rate_decay}")
    if not 0 <= trainer.momentum < 1:
        raise ConfigError(f"{where('trainer.momentum')}: key 'trainer.momentum' must be in [0, 1), got "
                          f"{trainer.momentum}")
    _check_model_dir(config.runtime.model_dir, where)
    if not ev.ks:
        raise ConfigError(f"{where('eval.ks')}: key 'eval.ks' is empty; list the cut-offs, e.g. [5, 10, 20]")
    for n, k in enumerate(ev.ks):
        if k < 1:
            raise ConfigError(f"{where('eval.ks')}: key 'eval.ks[{n}]' must be ≥ 1, got {k}")
    if len(set(ev.ks)) != len(ev.ks):
        raise ConfigError(f"{where('eval.ks')}: key 'eval.ks' lists a cut-off twice: {ev.ks}")
    table = ("hr", "ndcg", "precision", "recall", "f1", "auc")
    for n, metric in enumerate(ev.table_metrics):
        if metric not in table:
            raise ConfigError(f"{where('eval.table_metrics')}: key 'eval.table_metrics[{n}]' must be one of "
                              f"{list(table)}, got {quote(metric)}")
    if "visual_knn" in ev.baselines and not config.data.features:
        raise ConfigError(f"{where('eval.baselines')}: eval.baselines lists visual_knn, which compares items by "
                          "their visual features, but data.features is empty; name a feature set of the data set")
    if not ev.protocols:
        raise ConfigError(f"{where('eval.protocols')}: key 'eval.protocols' is empty; e.g. [sampled:100, full]")
    for row, assignments in ev.baseline_trainer.items():
        try:
            baseline_trainer(config, row, TrainerConfig())
        except ConfigError as e:
            raise ConfigError(f"{where('eval.baseline_trainer')}: key 'eval.baseline_trainer.{row}' "
                              f"({quote(assignments)}): {e}") from None
    for name, model_spec in registry.models.items():  # each section's loss: one its model can take
        section = getattr(config.model, name)
        if hasattr(section, "loss") and section.loss not in model_spec.losses:
            key = f"model.{name}.loss"
            raise ConfigError(f"{where(key)}: key '{key}' must be one of {list(model_spec.losses)} (the objectives "
                              f"{name} can take), got {quote(section.loss)}")
    spec = registry.model_spec(config.model.name, source)
    if spec.check is not None:  # the model package's own value checks
        try:
            spec.check(config, source)
        except ConfigError as e:  # name the override the offending key came from
            found = re.search(r"key '(model\.[^']+)'", str(e))
            origin = where(found.group(1)) if found else source
            message = str(e)
            if origin != source and message.startswith(f"{source}: "):
                message = f"{origin}: {message[len(source) + 2:]}"
            raise ConfigError(message) from None
    for key, protocols in (("eval.protocols", config.eval.protocols),
                           ("trainer.validation_protocol", [config.trainer.validation_protocol])):
        for protocol in protocols:
            try:
                parse_protocol(protocol)
            except ValueError as e:
                raise ConfigError(f"{where(key)}: key '{key}': {e}") from None
    if not spec.evaluation and not check_metric_name(trainer.validation_metric):
        raise ConfigError(f"{where('trainer.validation_metric')}: key 'trainer.validation_metric' is "
                          f"{quote(trainer.validation_metric)}; expected one of {metric_choices()} with K ≥ 1, e.g. "
                          "hr@10 or ndcg@20")


def _check_split(config, where):
    data = config.data
    if data.split not in SPLIT_KINDS:
        raise ConfigError(f"{where('data.split')}: key 'data.split' must be one of {list(SPLIT_KINDS)}, got "
                          f"{quote(data.split)}")
    for key in ("test_item_fraction", "validation_item_fraction"):
        value = getattr(data, key)
        if not 0 <= value < 1:
            raise ConfigError(f"{where('data.' + key)}: key 'data.{key}' must be in [0, 1), got {value}")
    if data.split == "new_items":
        if data.test_item_fraction + data.validation_item_fraction <= 0:
            raise ConfigError(f"{where('data.test_item_fraction')}: data.test_item_fraction + "
                              "data.validation_item_fraction must be > 0 with data.split new_items (the share of items "
                              "held out as new; test 0 with validation items: a run that trains on every other item, "
                              "judged later on a file of new items)")
        total = data.test_item_fraction + data.validation_item_fraction
        if total >= 1:
            key = "data.validation_item_fraction"
            raise ConfigError(f"{where(key)}: data.test_item_fraction + data.validation_item_fraction must be < 1 "
                              f"(some items must stay for training), got {total:g}")
    if not SEED_RANGE[0] <= data.split_seed <= SEED_RANGE[1]:
        raise ConfigError(f"{where('data.split_seed')}: key 'data.split_seed' must be in [0, 2**32 - 1], got "
                          f"{data.split_seed}")


def to_dict(config):
    return dataclasses.asdict(config)


def from_dict(params, source="params.yaml"):
    config = ExperimentConfig()
    override(config, params, source=source)
    return config


def write_params(config, model_dir):
    """Write the resolved config as ``<model_dir>/params.yaml`` (atomically)."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "params.yaml")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False)
    os.replace(tmp, path)
    return path


def read_params(model_dir):
    path = os.path.join(model_dir, "params.yaml")
    if not os.path.isdir(model_dir):
        raise ConfigError(f"{quote(model_dir)}: run directory not found")
    if not os.path.exists(path):
        raise ConfigError(f"{path}: not found; is {quote(model_dir)} a tfvrec run directory?")
    params = _read_yaml(path, what="params file") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping (a resolved tfvrec config)")
    return from_dict(params, source=path)
