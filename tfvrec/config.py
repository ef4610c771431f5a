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
import os
import typing
from typing import Dict, List

import yaml

from tfvrec import registry
from tfvrec.data.synthetic import SyntheticWorldConfig
from tfvrec.errors import ConfigError
from tfvrec.objectives import LOSSES  # the objectives a model section may name in its ``loss`` key

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "override", "parse_set", "read_params",
           "write_params", "from_dict", "to_dict", "get_experiment", "experiment_names"]


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
    checkpoint_every_steps: int = 200
    validation_split: str = "validation"  # early stopping reads this split ("" to disable)
    validation_protocol: str = "sampled:100"
    validation_metric: str = "hr@10"
    validation_max_users: int = 2000  # validate on a fixed random subset to keep epochs fast
    early_stopping_patience: int = 3  # epochs without improvement; 0 disables early stopping
    verbose: int = 1  # Keras progbar: 0 silent, 1 progress bar, 2 one line per epoch


@dataclasses.dataclass
class RuntimeConfig:
    model_dir: str = "runs/default"
    # "auto": MultiWorkerMirrored when TF_CONFIG names several workers, else Mirrored over
    # all visible GPUs (or over `logical_cpus` CPU devices), else the default strategy.
    distribution_strategy: str = "auto"
    logical_cpus: int = 0  # >1 splits the CPU into that many logical devices (tests)
    mixed_precision: bool = False  # float16 compute on GPUs
    seed: int = 0
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism


@dataclasses.dataclass
class EvalConfig:
    split: str = "test"  # held-out split evaluated after training (falls back to validation)
    protocols: List[str] = dataclasses.field(default_factory=lambda: ["sampled:100", "full"])
    ks: List[int] = dataclasses.field(default_factory=lambda: [5, 10, 20])
    repeats: int = 10
    seed: int = 0
    baselines: List[str] = dataclasses.field(default_factory=lambda: ["popularity", "random"])
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
    scann_leaves_to_search: int = 0  # 0: about 10% of the leaves
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
    "trainer.optimizer": ("lazy_adam", "adam", "adagrad", "sgd"),
    "runtime.distribution_strategy": ("auto", "mirrored", "multi_worker_mirrored", "one_device", "default"),
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
            raise ConfigError(f"{source}: key '{key}' expects a mapping, got {type(value).__name__} {value!r}")
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
    raise ConfigError(f"{source}: key '{key}' expects {_type_name(tp)}, got {type(value).__name__} {value!r}")


def override(config, overrides, source, prefix=""):
    """Apply a nested dict of overrides to a dataclass instance in place, strictly."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<top>'}' must be a mapping, got {overrides!r}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    for name, value in overrides.items():
        key = prefix + str(name)
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown key '{key}'.{hint} Valid keys here: {sorted(fields)}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            override(current, value, source, prefix=key + ".")
            continue
        value = _coerce(value, hints[name], key, source)
        choices = CHOICES.get(key) or (LOSSES if key.startswith("model.") and key.endswith(".loss") else None)
        if choices and value not in choices:
            raise ConfigError(f"{source}: key '{key}' must be one of {list(choices)}, got {value!r}")
        setattr(config, name, value)
    return config


def parse_set(assignment):
    """``"a.b=c"`` → ``{"a": {"b": <yaml value of c>}}``."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set trainer.epochs=3")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def load_config(path=None, sets=(), experiment=None) -> ExperimentConfig:
    """Resolve a config: experiment defaults ← YAML file ← ``--set`` overrides."""
    overrides = {}
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f"{path}: config file not found")
        with open(path) as f:
            try:
                overrides = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    overrides = dict(overrides)
    name = overrides.pop("experiment", None) or experiment or "bpr"
    config = get_experiment(name, source=path or "<defaults>")
    override(config, overrides, source=path or "<defaults>")
    for assignment in sets:
        override(config, parse_set(assignment), source=f"--set {assignment}")
    validate(config, source=path or "<config>")
    return config


def validate(config, source="<config>"):
    """Cross-field checks that single-key type checks cannot see."""
    try:  # the world checks its own cross-field constraints (overrides bypass __post_init__)
        config.data.synthetic.validate()
    except ValueError as e:
        raise ConfigError(f"{source}: data.synthetic: {e}") from None
    if config.data.source == "directory" and not config.data.path:
        raise ConfigError(f"{source}: data.source is 'directory' but data.path is empty")
    if config.data.source == "import" and not (config.data.importer and config.data.raw_path):
        raise ConfigError(f"{source}: data.source is 'import' but data.importer or data.raw_path is empty")
    for key, value in (("trainer.epochs", config.trainer.epochs), ("trainer.batch_size", config.trainer.batch_size),
                       ("trainer.negatives_per_positive", config.trainer.negatives_per_positive),
                       ("eval.repeats", config.eval.repeats)):
        if value < 1:
            raise ConfigError(f"{source}: key '{key}' must be ≥ 1, got {value}")
    if config.trainer.learning_rate <= 0:
        raise ConfigError(f"{source}: key 'trainer.learning_rate' must be > 0, got {config.trainer.learning_rate}")
    if not 0 < config.trainer.learning_rate_decay <= 1:
        raise ConfigError(f"{source}: key 'trainer.learning_rate_decay' must be in (0, 1], got "
                          f"{config.trainer.learning_rate_decay}")
    spec = registry.model_spec(config.model.name, source)
    if spec.check is not None:  # the model package's own value checks
        spec.check(config, source)
    from tfvrec.evaluation.protocols import parse_protocol  # import here: protocols import numpy only
    for key, protocols in (("eval.protocols", config.eval.protocols),
                           ("trainer.validation_protocol", [config.trainer.validation_protocol])):
        for protocol in protocols:
            try:
                parse_protocol(protocol)
            except ValueError as e:
                raise ConfigError(f"{source}: key '{key}': {e}") from None


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
    if not os.path.exists(path):
        raise ConfigError(f"{path}: not found; is {model_dir!r} a tfvrec run directory?")
    with open(path) as f:
        return from_dict(yaml.safe_load(f) or {}, source=path)
