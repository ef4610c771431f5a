"""The one registry of tfvrec: models, experiments, baselines and CLI commands by name.

After TF Model Garden's ``official/core/registry.py``: a name maps to one object,
registering a name twice is an error, and looking up an unknown name fails with the
registered choices. Everything here is TensorFlow-free, so reading a config or
printing ``tfvrec --help`` never imports TensorFlow.

* **models** — a `ModelSpec` per model, registered by the model's own package
  (``tfvrec/models/<name>/__init__.py``). The spec names, as ``"module:attribute"``
  strings resolved on first use, the parts of the model that import TensorFlow: its
  constructor, export adapter, baselines, warm starts, evaluation and CLI commands.
  `load_models` imports every package under ``tfvrec/models/``, so a new model is
  found without editing any file outside its folder.
* **experiments** — a name → a nested dict of overrides of the default
  ``ExperimentConfig`` (each model's ``EXPERIMENTS``; ``tfvrec.config`` applies them).
* **baselines** — ``factory(dataset, config, heldout) -> scorer`` for ``eval.baselines``.
* **commands** — modules adding ``tfvrec`` sub-commands with ``register_cli(subparsers)``.
* **candidate pools** — a protocol kind (`tfvrec.evaluation.protocols`) → the ``"module:attribute"``
  of ``pool(dataset, heldout) -> {user: item indices}``, the per-user candidates a model's paper
  ranks among (CDL's ``interest_candidates``).
"""
import dataclasses
import importlib
import os
import pkgutil
from typing import Callable, Dict, Optional


class Registry:
    """Names → objects; one kind of thing per registry (its ``kind`` names it in errors)."""

    def __init__(self, kind):
        self.kind = kind
        self._entries: Dict[str, object] = {}

    def register(self, name, obj=None):
        """``register(name, obj)``, or ``@register(name)`` as a decorator."""
        if obj is None:
            return lambda o: self.register(name, o)
        if name in self._entries:
            raise KeyError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name, source=""):
        if name not in self._entries:
            where = f"{source}: " if source else ""
            raise LookupError(f"{where}unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def items(self):
        return sorted(self._entries.items())


def resolve(reference):
    """``"package.module:attribute"`` → the attribute (``"package.module"`` → the module)."""
    module_name, _, attribute = reference.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know about one model, by reference.

    ``config`` is the TensorFlow-free dataclass of config section ``model.<name>``;
    ``experiments`` its named experiments (name → overrides of the other sections);
    ``check(config, source)`` raises ``ConfigError`` for bad values of the section.
    The other fields are ``"module:attribute"`` references (empty: the model has none):

    - ``create``: ``create(config, dataset) -> RecommenderModel``;
    - ``serving``: the export adapter ``build(config, dataset, model, new_items=None,
      replace_items=False)`` returning ``ServingParts`` (or a serving module);
    - ``baselines``: a module that registers the paper's baselines when imported;
    - ``warm_starts``: ``warm_starts(config) -> [WarmStart]``, runs the trainer trains
      (or reuses) and loads into a fresh model before its first epoch;
    - ``evaluation``: a module with ``make_validation`` and ``evaluate_run`` for models
      that are not evaluated by the user–item protocols (e.g. tag recommenders);
    - ``commands``: a module with ``register_cli(subparsers)`` (model-specific verbs);
    - ``triplets``: a module whose ``source(config)`` gives the model's training triplets as a
      `tfvrec.triplets.sources.TripletSource` (``tfvrec triplets`` writes them as records);
    - ``inputs``: the training stream's builder (see ``input_kind``).
    """

    name: str
    config: type
    experiments: Dict[str, dict]
    create: str
    check: Optional[Callable] = None
    serving: str = ""
    baselines: str = ""
    warm_starts: str = ""
    evaluation: str = ""
    commands: str = ""
    triplets: str = ""
    # TensorBoard histograms of what the model learned, each epoch (`tfvrec.inspect.epoch`):
    # ``summaries(model, dataset, users) -> {name: array}`` (e.g. HASC's γ and attention entropy).
    summaries: str = ""
    summary: str = ""  # one line: the paper
    # The training stream (`tfvrec.inputs`): "pairs" (LearnBPR's bootstrap, built by the input layer),
    # "triplets" or "posts"; ``inputs`` names the package's builder ``build(config, dataset, model, seed)
    # -> (tf.data.Dataset, steps_per_epoch)`` for any kind the input layer does not build alone.
    input_kind: str = "pairs"
    inputs: str = ""
    # Why an item is recommended (`tfvrec report`): ``explain(model, dataset, user_rows, item_rows) ->
    # [{"weights": {name: value in [0, 1]}, "lines": [str]}]``, one entry per (user, item).
    explain: str = ""
    # The objectives ``model.<name>.loss`` may name (`tfvrec.tasks.build`).
    losses: tuple = ("logistic", "hinge", "retrieval")
    # Triplet samplers the package lends to other models, by name: ``{name: "module:function"}``,
    # ``function(config, dataset, guidelines) -> sampler`` (``sampler.batches(seed, n, batch_size)``).
    samplers: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class WarmStart:
    """A model that starts from another trained run (HASC's P and W from BPR-MF).

    A model package lists them (``ModelSpec.warm_starts``: ``warm_starts(config) ->
    [WarmStart]``); the trainer runs them before training starts (on a resumed run too:
    its backup, restored afterwards, then overwrites the weights). For each, it trains
    the source run first unless it is finished, builds the source model on the same
    data set, restores its best checkpoint and calls ``load(model, source_model)``.
    """

    source: object  # the source run's ExperimentConfig (its runtime.model_dir is where it lives)
    load: Callable  # load(model, source_model): copy weights into the fresh model
    what: str  # for the log, e.g. "P and W from BPR-MF"
    model: str = ""  # the model the source run must be (refused otherwise, naming its params.yaml)
    # check(source_params, run_dir): refuse a source run that cannot be loaded (ConfigError).
    check: Optional[Callable] = None
    train_if_missing: bool = True  # False: the source run is given; a missing one is not trained


models = Registry("model")
experiments = Registry("experiment")
baselines = Registry("baseline")
commands = Registry("command module")
samplers = Registry("sampler")
candidate_pools = Registry("candidate pool")


def register_model(spec: ModelSpec):
    """Register a model and its named experiments (called by the model's package)."""
    models.register(spec.name, spec)
    for name, overrides in spec.experiments.items():
        experiments.register(name, overrides)
    if spec.commands:
        commands.register(spec.name, spec.commands)
    for name, reference in spec.samplers.items():
        samplers.register(name, reference)
    return spec


def register_baseline(name):
    """Decorator: ``factory(dataset, config, heldout) -> scorer`` becomes baseline ``name``."""
    return baselines.register(name)


def register_candidate_pool(kind, reference):
    """Protocol ``kind`` draws its candidates from ``pool(dataset, heldout) -> {user: item indices}``
    (a ``"module:attribute"`` reference, resolved on first use)."""
    return candidate_pools.register(kind, reference)


def candidate_pool_function(kind):
    """The pool function of protocol ``kind``, or None when no model registered one."""
    load_models()
    return resolve(candidate_pools.get(kind)) if kind in candidate_pools else None


_LOADED = False


def load_models():
    """Import every model package under ``tfvrec/models/`` (each registers itself); idempotent."""
    global _LOADED
    if not _LOADED:
        # Found by path, not by importing tfvrec.models (whose create_model uses this registry).
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
        for info in sorted(pkgutil.iter_modules([folder]), key=lambda i: i.name):
            if info.ispkg:
                importlib.import_module(f"tfvrec.models.{info.name}")
        _LOADED = True
    return models.names()


def model_spec(name, source=""):
    load_models()
    return models.get(name, source)


def create_model(config, dataset):
    """The model of ``config.model.name`` for ``dataset`` (its package's ``create``), built: called once
    on the example input it declares (``model.example_input()``), so every variable exists and a
    checkpoint restores into it."""
    spec = model_spec(config.model.name, "model.name")
    model = resolve(spec.create)(config, dataset)
    model(model.example_input())
    return model


# The engine, by reference like the models' parts: layers below the trainer (the run layer's
# "train unless finished", a model's baseline runs) reach it here without importing it.
TRAINER = "tfvrec.training.trainer:train"


def train(config):
    """Train (or resume) the run of ``config`` with the engine; returns its results table's rows."""
    return resolve(TRAINER)(config)


def load_baselines(names):
    """Import the baseline modules of every model, so ``eval.baselines`` may name any of them."""
    load_models()
    for _, spec in models.items():
        if spec.baselines:
            resolve(spec.baselines)
    return {name: baselines.get(name, "eval.baselines") for name in names}
