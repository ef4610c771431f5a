"""The training engine shared by every model: config in, trained and evaluated run directory out.

Run directory (``runtime.model_dir``)::

    params.yaml            the resolved config (written once the data set and model are built)
    state/                 the run state: one record (weights, optimizer, epoch, step, early
                           stopping, history) committed atomically (`tfvrec.training.runstate`)
    train.lock             held (flock) by the one trainer of this directory while it runs
    training_state.json    the record, readable: epochs done, history, best validation value
    checkpoints/ckpt-N     model weights after epoch N;  checkpoints/best/ the best epoch
    tensorboard/           train/ and validation/ scalars
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
import signal
import tempfile
import threading
import time

import tensorflow as tf
from absl import logging
from tensorflow.python.checkpoint import checkpoint_management

from tfvrec import config as config_lib
from tfvrec import registry
from tfvrec.data import splits
from tfvrec.data.resolve import resolve_dataset
from tfvrec.models import create_model
from tfvrec.training import runstate
from tfvrec.training.distribution import configure_devices, create_strategy, is_chief, num_workers
from tfvrec.training.lazy_adam import LazyAdam
from tfvrec.training.runstate import Preempted, RunState, failpoint

# How a run is evaluated unless its model package says otherwise (``ModelSpec.evaluation``).
DEFAULT_EVALUATION = "tfvrec.evaluation.user_items"
# What a run directory's existing run must share with the config that resumes it: its
# checkpoints (model, optimizer) and its input stream (data, seed, batches) depend on them.
_RUN_IDENTITY = ("model", "data")
_RUN_IDENTITY_KEYS = ("trainer.batch_size", "trainer.steps_per_epoch", "trainer.negatives_per_positive",
                      "trainer.optimizer", "runtime.seed")
TENSORBOARD_EVERY = 50  # steps between training-loss scalars


def make_optimizer(trainer):
    optimizers = {"lazy_adam": LazyAdam, "adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad,
                  "sgd": tf.keras.optimizers.SGD}
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
        with _SigtermFlag() as sigterm:
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
            _Loop(config, dataset, model, strategy, chief, write_dir, validation, sigterm).run()
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if not chief:
        return ([], model) if return_model else []
    restore_best(model, model_dir)
    rows = evaluate_run(config, dataset, model)
    return (rows, model) if return_model else rows


class _SigtermFlag:
    """While training: SIGTERM sets a flag the loop reads at step boundaries (main thread only)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            print("tfvrec train: SIGTERM received; saving the run at the next step boundary", flush=True)
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class _Publisher:
    """What is derived from a record: ``checkpoints/ckpt-N``, ``checkpoints/best/``, ``training_state.json``.

    Each write is idempotent (written aside, renamed into place), so a run started from a
    record whose publication a kill cut short publishes it again and ends with exactly
    one checkpoint per epoch."""

    def __init__(self, write_dir, model, keep):
        self.write_dir, self.keep = write_dir, keep
        self.directory = os.path.join(write_dir, "checkpoints")
        self.best_directory = os.path.join(self.directory, "best")
        self.weights = tf.train.Checkpoint(model=model)

    @staticmethod
    def _listed(directory):
        state = tf.train.get_checkpoint_state(directory)
        if state is None:
            return []
        return [os.path.basename(p) for p in state.all_model_checkpoint_paths]

    def _write(self, directory, epoch, keep):
        name = f"ckpt-{epoch}"
        listed = self._listed(directory)
        if name in listed and os.path.exists(os.path.join(directory, name + ".index")):
            return False
        os.makedirs(directory, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=directory)
        try:
            self.weights.write(os.path.join(tmp, "ckpt"))
            files = sorted(os.listdir(tmp), key=lambda f: f.endswith(".index"))  # the index last
            for entry in files:
                os.replace(os.path.join(tmp, entry), os.path.join(directory, name + entry[len("ckpt"):]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        names = sorted(set(listed + [name]), key=lambda n: int(n.split("-")[-1]))
        dropped = names[:-keep] if keep else []
        names = names[-keep:] if keep else names
        checkpoint_management.update_checkpoint_state_internal(directory, names[-1], all_model_checkpoint_paths=names,
                                                               save_relative_paths=True)
        for old in dropped:
            for entry in os.listdir(directory):
                if entry.startswith(old + "."):
                    os.remove(os.path.join(directory, entry))
        return True

    def clean(self):
        for directory in (self.directory, self.best_directory):
            if os.path.isdir(directory):
                for entry in os.listdir(directory):
                    if entry.startswith(".tmp-"):
                        shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)

    def publish(self, state, where):
        """Publish the derived files of ``state`` (the model holds the record's weights)."""
        if state.completed_epochs and state.step == 0:  # an epoch-end record: its weights are epoch N's
            self._write(self.directory, state.completed_epochs, self.keep)
            failpoint("publish:checkpoint", **where)
            if state.best_epoch == state.completed_epochs:
                self._write(self.best_directory, state.best_epoch, 1)
                failpoint("publish:best", **where)
        runstate.publish_view(self.write_dir, state)
        failpoint("publish:done", **where)


def _any_worker(strategy, flag):
    """Whether ``flag`` is set on any worker (a collective: every worker calls it at the same step)."""
    value = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy() > 0)


class _Loop:
    """The epoch/step loop: trains with the model's own ``train_step`` (Keras' train function),
    validates, stops early, and commits the run state."""

    def __init__(self, config, dataset, model, strategy, chief, write_dir, validation, sigterm):
        self.config, self.dataset, self.model, self.strategy = config, dataset, model, strategy
        self.chief, self.write_dir, self.sigterm = chief, write_dir, sigterm
        self.trainer = config.trainer
        self.model_dir = config.runtime.model_dir
        self.multi_worker = num_workers() > 1
        self.evaluate_validation = None
        if validation is not None:
            self.evaluate_validation = _evaluation_module(config).make_validation(config, dataset, model, validation)
        self.store = runstate.StateStore(write_dir)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.publisher = _Publisher(write_dir, model, self.trainer.keep_checkpoints)
        self.writers = {}

    def _writer(self, kind):
        if kind not in self.writers:
            self.writers[kind] = tf.summary.create_file_writer(os.path.join(self.write_dir, "tensorboard", kind))
        return self.writers[kind]

    def _scalars(self, kind, values, step, prefix):
        with self._writer(kind).as_default():
            for name, value in values.items():
                tf.summary.scalar(prefix + name, value, step=step)

    def _commit(self, state, where):
        self.store.commit(state, self.checkpoint, where)

    def _restore(self):
        """The committed record (restored into the model and optimizer), or a new one."""
        train_ds, steps = self.model.make_train_dataset(self.dataset, self.trainer, self.config.runtime.seed)
        options = tf.data.Options()
        # The inputs are generated, not read from files: each worker keeps its share of every batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(options)
        state, prefix = runstate.StateStore(self.model_dir).load()  # non-chief workers read the chief's record
        if state is None:
            state = RunState(steps_per_epoch=steps)
        else:
            if state.steps_per_epoch != steps:
                raise config_lib.ConfigError(
                    f"{self.model_dir}: the run was trained with {state.steps_per_epoch} steps per epoch, this "
                    f"config gives {steps}; use a new runtime.model_dir")
            self.checkpoint.read(prefix).assert_existing_objects_matched()
            state.resumes += 1
            if self.chief:
                print(f"tfvrec train: resuming {self.model_dir} from epoch {state.completed_epochs + 1}, step "
                      f"{state.step} of {steps} ({state.completed_epochs} epochs done; skipping the "
                      f"{state.batches_consumed} batches already trained on)", flush=True)
            logging.info("Resuming from %s (%s)", prefix, state.describe())
        if self.chief:
            self.store.clean()
        self.publisher.clean()
        if state.sequence:  # publish what a kill may have cut short (idempotent)
            self.publisher.publish(state, {"epoch": state.completed_epochs, "step": state.step})
        if state.batches_consumed:
            train_ds = train_ds.skip(state.batches_consumed)
        return state, train_ds

    def _preempt_requested(self, at_commit_boundary):
        if not self.multi_worker:
            return self.sigterm.requested
        return _any_worker(self.strategy, self.sigterm.requested) if at_commit_boundary else False

    def run(self):
        trainer, model = self.trainer, self.model
        state, train_ds = self._restore()
        steps = state.steps_per_epoch
        if state.completed_epochs >= trainer.epochs and not state.done:
            state.done = True
            self._commit(state, {"epoch": state.completed_epochs, "step": 0})
            self.publisher.publish(state, {"epoch": state.completed_epochs, "step": 0})
        if state.done:
            return state
        iterator = iter(self.strategy.experimental_distribute_dataset(train_ds))
        train_function = model.make_train_function()
        every = trainer.checkpoint_every_steps
        for epoch in range(state.completed_epochs, trainer.epochs):
            number = epoch + 1
            if trainer.learning_rate_decay != 1.0:
                # Keyed on the epoch number, so a resumed run continues the schedule where it was killed.
                tf.keras.backend.set_value(model.optimizer.lr, trainer.learning_rate * trainer.learning_rate_decay
                                           ** epoch)
            learning_rate = float(tf.keras.backend.get_value(model.optimizer.lr))
            verbose = trainer.verbose if self.chief else 0
            if verbose:
                print(f"Epoch {number}/{trainer.epochs}", flush=True)
            progbar = tf.keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=None, unit_name="step")
            started, spent_before = time.time(), state.epoch_seconds
            if state.step == 0:
                model.reset_metrics()  # Keras metrics (e.g. tfrs' pairwise accuracy) count per epoch
            metric_names = {m.name for m in model.metrics}
            for step in range(state.step, steps):
                logs = train_function(iterator)
                for name, value in logs.items():
                    # Losses: the epoch's mean; Keras metrics: their own running value.
                    value = float(value)
                    state.loss_sums[name] = value if name in metric_names else state.loss_sums.get(name, 0.0) + value
                state.step, state.batches_consumed = step + 1, state.batches_consumed + 1
                means = {name: total if name in metric_names else total / state.step
                         for name, total in state.loss_sums.items()}
                progbar.stateful_metrics = set(means)
                progbar.update(state.step, list(means.items()) if verbose == 1 else None,
                               finalize=False)
                global_step = epoch * steps + state.step
                if self.chief and global_step % TENSORBOARD_EVERY == 0:
                    self._scalars("train", {k: float(v) for k, v in logs.items()}, global_step, "batch_")
                where = {"epoch": number, "step": state.step}
                failpoint("step", **where)
                boundary = state.step % every == 0 and state.step < steps
                if self._preempt_requested(boundary):
                    state.epoch_seconds = spent_before + time.time() - started
                    self._commit(state, where)
                    self.publisher.publish(state, where)
                    raise Preempted(f"SIGTERM: saved {self.model_dir} at epoch {number}, step {state.step} of "
                                    f"{steps}; the same command resumes it")
                if boundary:
                    state.epoch_seconds = spent_before + time.time() - started
                    self._commit(state, where)
            where = {"epoch": number, "step": steps}
            failpoint("epoch:trained", **where)
            entry = {name: total if name in metric_names else total / steps for name, total in state.loss_sums.items()}
            entry["lr"] = learning_rate
            stop = False
            improved = False
            if self.evaluate_validation is not None:
                result = self.evaluate_validation()
                for name, value in result.metrics.items():
                    entry[f"val_{name}"] = float(value)
                value = float(result.metrics[trainer.validation_metric])
                logging.info("epoch %d: validation %s (%s) = %.4f", number, trainer.validation_metric,
                             result.protocol, value)
                if state.best_value is None or value > state.best_value:
                    state.best_value, state.best_epoch, state.wait, improved = value, number, 0, True
                else:
                    state.wait += 1
                    if trainer.early_stopping_patience and state.wait >= trainer.early_stopping_patience:
                        logging.info("Early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)",
                                     trainer.validation_metric, state.wait, state.best_value, state.best_epoch)
                        stop = True
            failpoint("epoch:validated", **where)
            seconds = spent_before + time.time() - started
            entry["epoch_seconds"] = seconds
            if verbose:
                shown = [(k, v) for k, v in entry.items() if k not in ("epoch_seconds",)]
                progbar.stateful_metrics = {k for k, _ in shown}
                progbar.update(steps, shown, finalize=True)
            state.history.append(entry)
            state.train_seconds += seconds
            state.completed_epochs, state.step, state.epoch_seconds, state.loss_sums = number, 0, 0.0, {}
            state.done = number >= trainer.epochs or stop
            state.stopped_early = stop
            where = {"epoch": number, "step": 0}
            self._commit(state, where)
            self.publisher.publish(state, where)
            if self.chief:
                scalars = {k: v for k, v in entry.items() if not k.startswith("val_")}
                self._scalars("train", scalars, epoch, "epoch_")
                validation = {k[4:]: v for k, v in entry.items() if k.startswith("val_")}
                if validation:
                    self._scalars("validation", validation, epoch, "epoch_")
            if improved:
                logging.info("epoch %d: best so far, kept in %s", number, self.publisher.best_directory)
            if state.done:
                break
            if self._preempt_requested(True):
                raise Preempted(f"SIGTERM: saved {self.model_dir} after epoch {number}; the same command resumes it")
        for writer in self.writers.values():
            writer.flush()
        return state


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
