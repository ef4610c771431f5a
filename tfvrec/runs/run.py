"""A run directory as one object: its config, state, data set, trained model and results.

`Run` is how everything outside the trainer reads a run — evaluation, export, the report,
inference, the models' baselines and warm starts, the tools::

    run = Run("runs/bpr_synthetic")
    run.params        # the resolved config (params.yaml), runtime.model_dir = where the run is now
    run.state         # the committed RunState (or None), run.finished
    run.dataset()     # the data set with the splits of training time (`prepare_dataset`)
    run.load()        # (config, dataset, model), the best weights restored and checked
    run.metrics       # metrics.json

`ensure_trained(config)` is "train unless finished": the one answer to a directory that
holds another run is `OtherRunError`. `baseline_run` keeps a baseline's run inside the run it
serves, keyed by what the baseline learns from.

This layer sits below the models and the trainer and imports neither: a model is built
through the registry (`tfvrec.registry.create_model`) and trained through the registry's
engine reference (`tfvrec.registry.train`), as the engine itself reaches every model.
"""
import copy
import dataclasses
import hashlib
import json
import os

from tfvrec import config as config_lib
from tfvrec import input_files, registry
from tfvrec.data import splits, synthetic
from tfvrec.data.resolve import resolve_dataset
from tfvrec.errors import ConfigError
from tfvrec.runs import state as state_lib

METRICS_FILE = "metrics.json"
# What a run directory's existing run must share with the config that resumes it: its
# checkpoints (model, optimizer) and its input stream (data, seed, batches) depend on them.
IDENTITY_SECTIONS = ("model", "data")
IDENTITY_KEYS = ("trainer.batch_size", "trainer.steps_per_epoch", "trainer.negatives_per_positive",
                 "trainer.optimizer", "runtime.seed")


class OtherRunError(ConfigError):
    """The directory holds a run of another model, data set or input stream than the config's."""

    def __init__(self, message, changed):
        super().__init__(message)
        self.changed = changed  # the differing keys


def prepare_dataset(config):
    """The data set of ``config`` with the splits of its run: the one place splits are made
    (`tfvrec.data.splits.prepare_splits`), the same at training time and whenever the run is read."""
    dataset = resolve_dataset(config.data)
    splits.prepare_splits(config, dataset)
    return dataset


def check_same_run(config, model_dir):
    """Raise `OtherRunError` when ``model_dir`` holds a run that ``config`` cannot resume or reuse."""
    if not os.path.exists(os.path.join(model_dir, "params.yaml")):
        return
    previous = config_lib.read_params(model_dir)
    for section in IDENTITY_SECTIONS:
        old, new = dataclasses.asdict(getattr(previous, section)), dataclasses.asdict(getattr(config, section))
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise OtherRunError(
                f"{model_dir}/params.yaml: this run directory holds a run with a different '{section}' section "
                f"(changed: {changed}); use a new runtime.model_dir or delete the old run",
                [f"{section}.{k}" for k in changed])
    for key in IDENTITY_KEYS:
        section, name = key.split(".")
        old, new = getattr(getattr(previous, section), name), getattr(getattr(config, section), name)
        if old != new:
            raise OtherRunError(
                f"{model_dir}/params.yaml: this run directory holds a run trained with {key}={old!r}, not {new!r}; "
                "a resumed run must see the same input stream: use a new runtime.model_dir", [key])


class Run:
    """A run directory (``runtime.model_dir`` of a training run), read where it is now."""

    def __init__(self, directory):
        self.dir = str(directory)
        self._params = None
        self._dataset = None

    def __repr__(self):
        return f"Run({self.dir!r})"

    def exists(self):
        return os.path.exists(os.path.join(self.dir, "params.yaml"))

    @property
    def params(self):
        """The run's resolved config; ``runtime.model_dir`` is this directory (a moved or copied run
        reads, and writes, where it is — never at the path it was trained at)."""
        if self._params is None:
            params = config_lib.read_params(self.dir)
            params.runtime.model_dir = self.dir
            self._params = params
        return self._params

    @property
    def state(self):
        return state_lib.read_state(self.dir)

    @property
    def finished(self):
        state = self.state
        return bool(state is not None and state.done)

    def check_finished(self, allow_unfinished=None, what="evaluating"):
        """The run's `RunState`; an unfinished run is refused (``allow_unfinished=False``), or accepted
        with a warning (``True``; ``None``: a warning, for library callers)."""
        state = self.state
        if state is None:
            if not self.exists():
                raise ConfigError(f"{self.dir}: not a tfvrec run directory (no params.yaml)")
            raise ConfigError(f"{self.dir}: no training state; has this run been trained?")
        if not state.done:
            busy = " (its trainer is still running)" if state_lib.is_locked(self.dir) else ""
            if allow_unfinished is False:
                raise ConfigError(
                    f"{self.dir}: the run is {state.describe()}{busy}; finish it (train again with the same "
                    "command) or pass --allow-unfinished to use its best checkpoint so far")
            from absl import logging
            logging.warning("%s: %s the run, which is %s%s", self.dir, what, state.describe(), busy)
        return state

    @property
    def note(self):
        """Said in the title of an evaluation of this run: that it is unfinished, if so."""
        state = self.state
        return "" if state is None or state.done else f"UNFINISHED run ({state.describe()})"

    def dataset(self):
        if self._dataset is None:
            self._dataset = prepare_dataset(self.params)
        return self._dataset

    def best_checkpoint(self):
        """The best-validation weights if validation ran, else the last epoch's."""
        import tensorflow as tf
        checkpoints = os.path.join(self.dir, "checkpoints")
        path = tf.train.latest_checkpoint(os.path.join(checkpoints, "best")) or tf.train.latest_checkpoint(checkpoints)
        if path is None:
            raise ConfigError(f"{checkpoints}: no checkpoint; has this run been trained?")
        return path

    def restore(self, model):
        """Load the run's best weights into ``model`` (every variable checked); returns the checkpoint."""
        path = self.best_checkpoint()
        restore_weights(model, path)
        return path

    def load(self, allow_unfinished=None, dataset=None):
        """``(config, dataset, model)``: the trained model with its best weights (checked against it).

        An unfinished run is refused with ``allow_unfinished=False`` and loaded with a warning otherwise
        (its evaluations say so: `note`). ``dataset``: the run's data set, when the caller has it."""
        config = self.params
        self.check_finished(allow_unfinished)
        dataset = dataset if dataset is not None else self.dataset()
        model = registry.create_model(config, dataset)
        self.restore(model)
        return config, dataset, model

    @property
    def metrics(self):
        path = os.path.join(self.dir, METRICS_FILE)
        if not os.path.exists(path):
            raise ConfigError(f"{path}: not found; has this run been evaluated?")
        return input_files.read_json(path, "a run's metrics", error=lambda p, reason: ConfigError(f"{p}: {reason}"))


def restore_weights(model, path):
    """Restore the weights checkpoint ``path`` into ``model``, refusing one that does not fit it.

    Every variable of the (built) model must be in the checkpoint with its shape: a checkpoint of
    another model, another catalogue size, or a truncated file is refused naming the file, instead
    of leaving some variables at their random initial values.
    """
    import tensorflow as tf
    try:
        status = tf.train.Checkpoint(model=model).read(path)
        status.assert_existing_objects_matched()
        # Values the model does not hold are fine: a trained model's checkpoint carries its optimizer too.
        status.expect_partial()
    except AssertionError as e:
        missing = str(e).split("\n")[0][:300]
        raise ConfigError(f"{path}: this checkpoint does not hold the weights of this model "
                          f"({type(model).__name__}): {missing}") from None
    except (tf.errors.OpError, ValueError, IndexError, KeyError) as e:  # (IndexError: a file cut short)
        text = getattr(e, "message", None) or str(e)
        raise ConfigError(f"{path}: cannot restore this model's weights from it (damaged, or another model's "
                          f"checkpoint): {' '.join(text.split())[:300]}") from None
    return path


def ensure_trained(config):
    """Train the run of ``config`` unless its directory already holds it finished; its `Run`.

    A directory holding a different run raises `OtherRunError` (never reused, never deleted)."""
    run = Run(config.runtime.model_dir)
    if run.exists():
        check_same_run(config, run.dir)
        if run.finished:
            return run
    registry.train(config)
    return run


def baseline_run_dir(parent_dir, config, name):
    """``<parent_dir>/baselines/<name>-<digest>``: the run directory of a baseline trained inside a run,
    keyed by what the baseline learns from (its data, model and trainer sections and seed), so a changed
    baseline config trains a new run instead of reusing a stale one."""
    payload = {k: dataclasses.asdict(getattr(config, k)) for k in ("data", "model", "trainer")}
    payload["data"]["synthetic"] = synthetic.recorded_fields(config.data.synthetic)  # (later knobs: as before)
    if payload["data"]["split"] == "as_imported":  # the split keys unused: the digest of before they existed
        for key in ("split", "test_item_fraction", "validation_item_fraction", "split_seed"):
            payload["data"].pop(key)
    payload["seed"] = config.runtime.seed
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(parent_dir, "baselines", f"{name}-{digest}")


# The host run's validation rule a baseline run shares: the same early stopping on the same holdout.
VALIDATION_KEYS = ("validation_split", "validation_protocol", "validation_metric", "validation_max_users",
                   "early_stopping_patience", "checkpoint_every_steps", "verbose")


def baseline_config(host, experiment, name, sections=None):
    """The config of a baseline run inside run ``host``: experiment ``experiment``'s defaults with the host's
    data, runtime (seed) and validation rule, the trainer assignments of its row in ``eval.baseline_trainer``, the host's model sections ``sections`` (None: every section, the
    model name kept), no baselines of its own, and its directory `baseline_run_dir` (``name``)."""
    config = config_lib.get_experiment(experiment)
    config.data = copy.deepcopy(host.data)
    config.runtime = copy.deepcopy(host.runtime)
    if sections is None:
        name_of = config.model.name
        config.model = copy.deepcopy(host.model)
        config.model.name = name_of
    for section in sections or ():
        setattr(config.model, section, copy.deepcopy(getattr(host.model, section)))
    for key in VALIDATION_KEYS:
        setattr(config.trainer, key, getattr(host.trainer, key))
    config_lib.baseline_trainer(host, name, config.trainer)  # the row's recipe chosen on validation (eval.baseline_trainer)
    config.eval = dataclasses.replace(host.eval, baselines=[], baseline_trainer={})
    config.runtime.model_dir = baseline_run_dir(host.runtime.model_dir, config, name)
    return config


def baseline_run(parent_dir, name, config):
    """The finished `Run` of baseline ``name`` (``config``, trained into its `baseline_run_dir` under
    ``parent_dir`` unless already there)."""
    config.runtime.model_dir = baseline_run_dir(parent_dir, config, name)
    return ensure_trained(config)
