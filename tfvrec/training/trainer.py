"""The training engine shared by every model: config in, trained and evaluated run directory out.

Run directory (``runtime.model_dir``)::

    params.yaml            the resolved config
    training_state.json    epochs done, best validation value, patience count
    backup/                BackupAndRestore state (mid-epoch resume after a kill)
    checkpoints/ckpt-N     model weights after epoch N;  checkpoints/best/ the best epoch
    tensorboard/           train/ and validation/ scalars
    metrics.json           the final evaluation (protocol recorded beside each figure)
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
from tfvrec.training import callbacks as callbacks_lib
from tfvrec.training.distribution import configure_devices, create_strategy, is_chief
from tfvrec.training.lazy_adam import LazyAdam

# How a run is evaluated unless its model package says otherwise (``ModelSpec.evaluation``).
DEFAULT_EVALUATION = "tfvrec.evaluation.user_items"
# Config sections whose change makes an existing run's checkpoints meaningless.
_RUN_IDENTITY = ("model", "data")


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
    """Whether ``model_dir`` holds a run that trained to its end (``training_state.json``)."""
    return callbacks_lib.TrainingState(model_dir).done


def _check_same_run(config, model_dir):
    """Refuse to resume a run directory that holds a different model or data set."""
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


def build_model(config, dataset, strategy):
    with strategy.scope():
        model = create_model(config, dataset)
        model.compile(optimizer=make_optimizer(config.trainer))
        # Create every variable now: checkpoints restore into them, BackupAndRestore needs a built model.
        model({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
        model.optimizer.build(model.trainable_variables)
    return model


def train(config, return_model=False):
    """Train (or resume) the run described by ``config``; evaluate; return the results table's
    rows ``[(scorer name, EvalResult)]`` — and the trained in-memory model (best weights
    restored, as evaluated) with ``return_model``."""
    configure_devices(config.runtime)
    tf.keras.utils.set_random_seed(config.runtime.seed)
    strategy = create_strategy(config.runtime)
    chief = is_chief(strategy)
    model_dir = config.runtime.model_dir
    _check_same_run(config, model_dir)
    if chief:
        config_lib.write_params(config, model_dir)

    dataset = resolve_dataset(config.data)
    trainer = config.trainer
    validation = splits.validation_frame(config, dataset)  # carves train_holdout when asked

    model = build_model(config, dataset, strategy)
    # Under MultiWorkerMirroredStrategy every worker takes part in each checkpoint save
    # (reading mirrored variables is collective); non-chief workers write to scratch.
    os.makedirs(model_dir, exist_ok=True)
    write_dir = model_dir if chief else tempfile.mkdtemp(prefix=".worker-scratch-", dir=model_dir)
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"), max_to_keep=2)
    best_manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints", "best"),
                                              max_to_keep=1)
    state = callbacks_lib.TrainingState(model_dir if chief else write_dir)

    if state.done:
        logging.info("%s already holds a finished run (%d epochs); evaluating it", model_dir,
                     state.completed_epochs)
    else:
        run_warm_starts(config, dataset, model)
        train_ds, steps = model.make_train_dataset(dataset, trainer, config.runtime.seed)
        options = tf.data.Options()
        # The inputs are generated, not read from files: each worker keeps its share of every batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds = train_ds.with_options(options)
        callbacks = [tf.keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup"),
                                                         save_freq=trainer.checkpoint_every_steps)]
        if trainer.learning_rate_decay != 1.0:
            # Keyed on the epoch number, so a resumed run picks the schedule up where it was killed.
            callbacks.append(tf.keras.callbacks.LearningRateScheduler(
                lambda epoch: trainer.learning_rate * trainer.learning_rate_decay ** epoch))
        if validation is not None:
            evaluate_validation = _evaluation_module(config).make_validation(config, dataset, model, validation)
            callbacks.append(callbacks_lib.ValidationEarlyStopping(
                evaluate_validation, trainer.validation_metric, trainer.early_stopping_patience, best_manager,
                state))
        callbacks += [callbacks_lib.EpochCheckpoint(manager, state),
                      tf.keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard"), update_freq=50,
                                                     profile_batch=0)]
        model.fit(train_ds, epochs=trainer.epochs, steps_per_epoch=steps, callbacks=callbacks,
                  verbose=trainer.verbose)
        state.done = True
        if manager.latest_checkpoint is None:
            manager.save(checkpoint_number=state.completed_epochs)
        state.save()
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return ([], model) if return_model else []
    restore_best(model, model_dir)
    rows = evaluate_run(config, dataset, model)
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


def load_run(model_dir):
    """``(config, dataset, model)`` of a finished run, with its best weights restored."""
    config = config_lib.read_params(model_dir)
    configure_devices(dataclasses.replace(config.runtime, logical_cpus=0))
    dataset = resolve_dataset(config.data)
    splits.validation_frame(config, dataset)  # the splits of training time (train_holdout carved again)
    model = build_model(config, dataset, tf.distribute.get_strategy())
    restore_best(model, model_dir)
    return config, dataset, model


def evaluate_run(config, dataset, model, heldout_frame=None, heldout_name=None, protocol_names=None,
                 write=True):
    """Evaluate a trained model as its package says (the user–item protocols by default)."""
    return _evaluation_module(config).evaluate_run(config, dataset, model, heldout_frame=heldout_frame,
                                                   heldout_name=heldout_name, protocol_names=protocol_names,
                                                   write=write)
