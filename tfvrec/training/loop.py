"""The epoch/step loop of the trainer, with the exact-resume machinery around it.

`Loop` trains with the model's own ``train_step`` (Keras' train function), validates after
each epoch, stops early, and commits the run state (`tfvrec.runs.state`) every
``trainer.checkpoint_every_steps`` steps and at each epoch end; `_Publisher` derives
``checkpoints/ckpt-N``, ``checkpoints/best/`` and ``training_state.json`` from each record,
idempotently; `SigtermFlag` turns SIGTERM into a save at the next step boundary.
"""
import os
import shutil
import signal
import tempfile
import threading
import time

import tensorflow as tf
from absl import logging
from tensorflow.python.checkpoint import checkpoint_management

from tfvrec import inputs
from tfvrec.errors import ConfigError
from tfvrec.evaluation import engine as evaluation
from tfvrec.inspect.epoch import make_epoch_summaries
from tfvrec.runs import state as runstate
from tfvrec.runs.state import Preempted, RunState, failpoint
from tfvrec.training.distribution import num_workers

TENSORBOARD_EVERY = 50  # steps between training-loss scalars


class SigtermFlag:
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
        # Absolute: TF writes the checkpoint file's paths relative to it, resolving ours against the cwd.
        self.directory = os.path.abspath(os.path.join(write_dir, "checkpoints"))
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
        paths = [os.path.join(directory, n) for n in names]
        checkpoint_management.update_checkpoint_state_internal(directory, paths[-1], all_model_checkpoint_paths=paths,
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


class Loop:
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
            self.evaluate_validation = evaluation.make_validation(config, dataset, model, validation)
        self.store = runstate.StateStore(write_dir)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.publisher = _Publisher(write_dir, model, self.trainer.keep_checkpoints)
        self.writers = {}
        self.epoch_summaries = None
        if chief:
            self.epoch_summaries = make_epoch_summaries(config, dataset, model, validation, write_dir)

    def _writer(self, kind):
        if kind not in self.writers:
            self.writers[kind] = tf.summary.create_file_writer(os.path.join(self.write_dir, "tensorboard", kind))
        return self.writers[kind]

    def _scalars(self, kind, values, step, prefix):
        with self._writer(kind).as_default():
            for name, value in values.items():
                tf.summary.scalar(prefix + name, value, step=step)

    def _validate(self, state, entry, number):
        """Validation after epoch ``number`` into ``entry`` (``val_*``) and the early-stopping state;
        returns ``(stop, improved)``."""
        if self.evaluate_validation is None:
            return False, False
        trainer = self.trainer
        result = self.evaluate_validation()
        for name, value in result.metrics.items():
            entry[f"val_{name}"] = float(value)
        value = float(result.metrics[trainer.validation_metric])
        logging.info("epoch %d: validation %s (%s) = %.4f", number, trainer.validation_metric, result.protocol, value)
        if state.best_value is None or value > state.best_value:
            state.best_value, state.best_epoch, state.wait = value, number, 0
            return False, True
        state.wait += 1
        if trainer.early_stopping_patience and state.wait >= trainer.early_stopping_patience:
            logging.info("Early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)",
                         trainer.validation_metric, state.wait, state.best_value, state.best_epoch)
            return True, False
        return False, False

    def _summarize_epoch(self, entry, epoch):
        """TensorBoard after an epoch (the chief): its scalars, validation figures and epoch summaries."""
        self._scalars("train", {k: v for k, v in entry.items() if not k.startswith("val_")}, epoch, "epoch_")
        validation = {k[4:]: v for k, v in entry.items() if k.startswith("val_")}
        if validation:
            self._scalars("validation", validation, epoch, "epoch_")
        if self.epoch_summaries is not None:
            self.epoch_summaries.write(epoch)

    def _commit(self, state, where):
        self.store.commit(state, self.checkpoint, where)

    def _restore(self):
        """The committed record (restored into the model and optimizer), or a new one."""
        train_ds, steps = inputs.training_stream(self.config, self.dataset, self.model, self.config.runtime.seed)
        options = tf.data.Options()
        # The inputs are generated, not read from files: each worker keeps its share of every batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(options)
        state, prefix = runstate.StateStore(self.model_dir).load()  # non-chief workers read the chief's record
        if state is None:
            state = RunState(steps_per_epoch=steps)
        else:
            if state.steps_per_epoch != steps:
                raise ConfigError(
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
            stop, improved = self._validate(state, entry, number)
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
                self._summarize_epoch(entry, epoch)
            if improved:
                logging.info("epoch %d: best so far, kept in %s", number, self.publisher.best_directory)
            if state.done:
                break
            if self._preempt_requested(True):
                raise Preempted(f"SIGTERM: saved {self.model_dir} after epoch {number}; the same command resumes it")
        for writer in self.writers.values():
            writer.flush()
        return state
