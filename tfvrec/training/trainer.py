"""The training engine shared by every model: config in, trained and evaluated run directory out.

Run directory (``runtime.model_dir``)::

    params.yaml            the resolved config (written once the data set and model are built)
    state/                 the run state: one record (weights, optimizer, epoch, step, early
                           stopping, history) committed atomically (`tfvrec.training.runstate`)
    train.lock             held (flock) by the one trainer of this directory while it runs
    training_state.json    the record, readable: epochs done, history, best validation value
    checkpoints/ckpt-N     model weights after epoch N;  checkpoints/best/ the best epoch
    tensorboard/           train/ and validation/ scalars, epochs/ (histograms, recommendation
                           images), hparams/ (config and test metrics), projector/ (item vectors)
    metrics.json           the final evaluation (protocol recorded beside each figure)

Resume is exact: a run killed at any moment and started again with the same command
continues from its last record (every ``trainer.checkpoint_every_steps`` steps and at
each epoch end) with the same weights, optimizer state and input position, so it ends
with one history entry and one checkpoint per epoch and the weights of an
uninterrupted run. SIGTERM is answered at the next step boundary: the run is recorded
and the process exits with `runstate.PREEMPTED_EXIT_CODE` (143).
"""
import dataclasses
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from tfvrec import config as config_lib
from tfvrec import registry
from tfvrec.data import splits
from tfvrec.data.resolve import resolve_dataset
from tfvrec.models import create_model
from tfvrec.training import runstate
from tfvrec.training.distribution import configure_devices, create_strategy, is_chief
from tfvrec.training.lazy_adam import LazyAdam
from tfvrec.training.sparse_sgd import SparseSGD
from tfvrec.training.loop import Loop, SigtermFlag

# How a run is evaluated unless its model package says otherwise (``ModelSpec.evaluation``).
DEFAULT_EVALUATION = "tfvrec.evaluation.user_items"
# What a run directory's existing run must share with the config that resumes it: its
# checkpoints (model, optimizer) and its input stream (data, seed, batches) depend on them.
_RUN_IDENTITY = ("model", "data")
_RUN_IDENTITY_KEYS = ("trainer.batch_size", "trainer.steps_per_epoch", "trainer.negatives_per_positive",
                      "trainer.optimizer", "runtime.seed")


def make_optimizer(trainer):
    optimizers = {"lazy_adam": LazyAdam, "adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad,
                  "sgd": SparseSGD}
    options = {"learning_rate": trainer.learning_rate}
    if trainer.weight_decay:
        options["weight_decay"] = trainer.weight_decay
    if trainer.optimizer == "sgd" and trainer.momentum:
        options["momentum"] = trainer.momentum
    return optimizers[trainer.optimizer](**options)


def is_finished(model_dir):
    """Whether ``model_dir`` holds a run that trained to its end."""
    state = runstate.read_state(model_dir)
    return bool(state is not None and state.done)


def _check_same_run(config, model_dir):
    """Refuse to resume a run directory that holds a different model, data set or input stream."""
    if not os.path.exists(os.path.join(model_dir, "params.yaml")):
        return
    previous = config_lib.read_params(model_dir)
    for section in _RUN_IDENTITY:
        old, new = dataclasses.asdict(getattr(previous, section)), dataclasses.asdict(getattr(config, section))
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise config_lib.ConfigError(
                f"{model_dir}/params.yaml: this run directory holds a run with a different '{section}' "
                f"section (changed: {changed}); use a new runtime.model_dir or delete the old run")
    for key in _RUN_IDENTITY_KEYS:
        section, name = key.split(".")
        old, new = getattr(getattr(previous, section), name), getattr(getattr(config, section), name)
        if old != new:
            raise config_lib.ConfigError(
                f"{model_dir}/params.yaml: this run directory holds a run trained with {key}={old!r}, not "
                f"{new!r}; a resumed run must see the same input stream: use a new runtime.model_dir")


def build_model(config, dataset, strategy):
    with strategy.scope():
        model = create_model(config, dataset)
        model.compile(optimizer=make_optimizer(config.trainer))
        # Create every variable now: the run state and checkpoints restore into them.
        model({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
        model.optimizer.build(model.trainable_variables)
    return model


def check_baselines(config, source=""):
    """Every ``eval.baselines`` name is registered (checked before any work)."""
    from tfvrec.evaluation import evaluator  # noqa: F401  (registers the engine's own baselines)
    try:
        registry.load_baselines(config.eval.baselines)
    except LookupError as e:
        raise config_lib.ConfigError(f"{source}: {e}" if source else str(e)) from None


def train(config, return_model=False):
    """Train (or resume) the run described by ``config``; evaluate; return the results table's
    rows ``[(scorer name, EvalResult)]`` — and the trained in-memory model (best weights
    restored, as evaluated) with ``return_model``.

    Raises `runstate.RunDirectoryBusy` when another trainer holds the run directory and
    `runstate.Preempted` after answering a SIGTERM (the run is saved; train again to resume).
    """
    check_baselines(config)  # names the config could not check without importing the models' TensorFlow code
    configure_devices(config.runtime)
    tf.keras.utils.set_random_seed(config.runtime.seed)
    strategy = create_strategy(config.runtime)
    chief = is_chief(strategy)
    lock = runstate.RunLock(config.runtime.model_dir).acquire() if chief else None
    try:
        with SigtermFlag() as sigterm:
            return _train(config, strategy, chief, sigterm, return_model)
    finally:
        if lock is not None:
            lock.release()


def _train(config, strategy, chief, sigterm, return_model):
    model_dir = config.runtime.model_dir
    state = runstate.read_state(model_dir)
    if state is not None and state.format == 0 and not state.done:
        raise config_lib.ConfigError(
            f"{model_dir}: holds an unfinished run of an earlier tfvrec (training_state.json, backup/), which "
            "cannot be resumed exactly; train into a new runtime.model_dir or delete this one")
    if state is not None:
        _check_same_run(config, model_dir)

    dataset = resolve_dataset(config.data)
    validation = splits.validation_frame(config, dataset)  # carves train_holdout when asked

    model = build_model(config, dataset, strategy)
    if chief and not (state is not None and state.done):
        # Only now, with the data set and the model built: a first start that fails before this
        # point leaves no params.yaml (and one that fails later no run state, so it is overwritten).
        config_lib.write_params(config, model_dir)
    # Under MultiWorkerMirroredStrategy every worker takes part in each checkpoint save
    # (reading mirrored variables is collective); non-chief workers write to scratch.
    os.makedirs(model_dir, exist_ok=True)
    write_dir = model_dir if chief else tempfile.mkdtemp(prefix=".worker-scratch-", dir=model_dir)
    try:
        if state is not None and state.done:
            logging.info("%s already holds a finished run (%d epochs); evaluating it", model_dir,
                         state.completed_epochs)
        else:
            run_warm_starts(config, dataset, model)
            from tfvrec.training.parameter_server import ParameterServerLoop, is_parameter_server
            loop = ParameterServerLoop if is_parameter_server(strategy) else Loop
            loop(config, dataset, model, strategy, chief, write_dir, validation, sigterm,
                 _evaluation_module(config)).run()
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if not chief:
        return ([], model) if return_model else []
    restore_best(model, model_dir)
    rows = evaluate_run(config, dataset, model)
    if config.trainer.tensorboard_summaries:
        from tfvrec.inspect.run import summarize_run, tensorboard_command
        summarize_run(config, dataset, model, rows)
        print(f"TensorBoard (scalars, HParams, images, histograms, projector): {tensorboard_command(model_dir)}",
              flush=True)
    return (rows, model) if return_model else rows


def run_warm_starts(config, dataset, model):
    """The model package's warm starts (`tfvrec.registry.WarmStart`): train or reuse each
    source run, restore it into a model built on this data set, load it into ``model``."""
    spec = registry.model_spec(config.model.name)
    if not spec.warm_starts:
        return
    for warm in registry.resolve(spec.warm_starts)(config):
        run = warm.source.runtime.model_dir
        if not is_finished(run):
            if not warm.train_if_missing:
                logging.warning("%s: the run %s is not finished; starting from its latest checkpoint", warm.what, run)
            else:
                logging.info("%s: training the run it starts from (%s) into %s", config.model.name, warm.what, run)
                train(warm.source)
        params = config_lib.read_params(run)
        if warm.check is not None:
            warm.check(params, run)
        source = create_model(params, dataset)
        source({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
        try:
            restore_best(source, run)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            raise config_lib.ConfigError(f"{run}: its checkpoint does not fit this data set "
                                         f"({dataset.num_users} users, {dataset.num_items} items): {e}") from None
        warm.load(model, source)
        logging.info("%s: %s initialised from the run %s", config.model.name, warm.what, run)


def _evaluation_module(config):
    """The model package's evaluation (``ModelSpec.evaluation``), or the user–item one."""
    spec = registry.model_spec(config.model.name)
    return registry.resolve(spec.evaluation or DEFAULT_EVALUATION)


def restore_best(model, model_dir):
    """Load the best-validation weights if validation ran, else the last epoch's."""
    checkpoints = os.path.join(model_dir, "checkpoints")
    path = tf.train.latest_checkpoint(os.path.join(checkpoints, "best")) or tf.train.latest_checkpoint(checkpoints)
    if path is None:
        raise FileNotFoundError(f"{checkpoints}: no checkpoint; has this run been trained?")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    logging.info("Restored %s", path)
    return path


def check_finished(model_dir, allow_unfinished=None, what="evaluating"):
    """The run's `RunState`; an unfinished run is refused (``allow_unfinished=False``), or
    accepted with a warning (``True``; ``None``: a warning, for library callers)."""
    state = runstate.read_state(model_dir)
    if state is None:
        if not os.path.exists(os.path.join(model_dir, "params.yaml")):
            raise config_lib.ConfigError(f"{model_dir}: not a tfvrec run directory (no params.yaml)")
        raise config_lib.ConfigError(f"{model_dir}: no training state; has this run been trained?")
    if not state.done:
        busy = " (its trainer is still running)" if runstate.is_locked(model_dir) else ""
        if allow_unfinished is False:
            raise config_lib.ConfigError(
                f"{model_dir}: the run is {state.describe()}{busy}; finish it (train again with the same "
                "command) or pass --allow-unfinished to use its best checkpoint so far")
        logging.warning("%s: %s the run, which is %s%s", model_dir, what, state.describe(), busy)
    return state


def load_run(model_dir, allow_unfinished=None):
    """``(config, dataset, model)`` of a trained run, with its best weights restored.

    An unfinished run is refused with ``allow_unfinished=False`` and loaded with a warning
    otherwise; the loaded model's ``run_state`` is the run's `RunState` and, when the run is
    unfinished, `evaluate_run` says so in the table's title."""
    config = config_lib.read_params(model_dir)
    state = check_finished(model_dir, allow_unfinished)
    configure_devices(dataclasses.replace(config.runtime, logical_cpus=0))
    dataset = resolve_dataset(config.data)
    splits.validation_frame(config, dataset)  # the splits of training time (train_holdout carved again)
    model = build_model(config, dataset, tf.distribute.get_strategy())
    restore_best(model, model_dir)
    model.run_state = state
    return config, dataset, model


class _Noted:
    """A model as the evaluation sees it, with a note for the table's title (an unfinished run)."""

    def __init__(self, model, note):
        self._model, self._note = model, note

    def __getattr__(self, name):
        return getattr(self._model, name)

    @property
    def evaluation_note(self):
        own = getattr(self._model, "evaluation_note", "")
        return f"{self._note}; {own}" if own else self._note


def evaluate_run(config, dataset, model, heldout_frame=None, heldout_name=None, protocol_names=None,
                 write=True):
    """Evaluate a trained model as its package says (the user–item protocols by default). The table
    of an unfinished run (`load_run`) says so in its title (and so in ``metrics.json``)."""
    state = getattr(model, "run_state", None)
    if state is not None and not state.done:
        model = _Noted(model, f"UNFINISHED run ({state.describe()})")
    return _evaluation_module(config).evaluate_run(config, dataset, model, heldout_frame=heldout_frame,
                                                   heldout_name=heldout_name, protocol_names=protocol_names,
                                                   write=write)
