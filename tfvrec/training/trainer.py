"""The training engine shared by every model: config in, trained and evaluated run directory out.

Run directory (``runtime.model_dir``)::

    params.yaml            the resolved config (written once the data set and model are built)
    state/                 the run state: one record (weights, optimizer, epoch, step, early
                           stopping, history) committed atomically (`tfvrec.runs.state`)
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
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from tfvrec import config as config_lib
from tfvrec import registry, runs
from tfvrec.data import splits
from tfvrec.evaluation import engine as evaluation
from tfvrec.inspect.run import summarize_run, tensorboard_command
from tfvrec.runs import state as runstate
from tfvrec.training.distribution import configure_devices, create_strategy, is_chief
from tfvrec.training.lazy_adam import LazyAdam
from tfvrec.training.loop import Loop, SigtermFlag
from tfvrec.training.parameter_server import ParameterServerLoop, is_parameter_server
from tfvrec.training.sparse_sgd import SparseSGD


def make_optimizer(trainer):
    optimizers = {"lazy_adam": LazyAdam, "adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad,
                  "sgd": SparseSGD}
    options = {"learning_rate": trainer.learning_rate}
    if trainer.weight_decay:
        options["weight_decay"] = trainer.weight_decay
    if trainer.optimizer == "sgd" and trainer.momentum:
        options["momentum"] = trainer.momentum
    return optimizers[trainer.optimizer](**options)


def build_model(config, dataset, strategy):
    """The model under ``strategy``, compiled, every variable (optimizer slots too) created: the run
    state and checkpoints restore into them."""
    with strategy.scope():
        model = registry.create_model(config, dataset)
        model.compile(optimizer=make_optimizer(config.trainer))
        model.optimizer.build(model.trainable_variables)
    return model


def check_baselines(config, source=""):
    """Every ``eval.baselines`` name is registered (checked before any work)."""
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
        runs.check_same_run(config, model_dir)

    dataset = runs.prepare_dataset(config)
    validation = splits.validation_frame(config, dataset)

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
            loop = ParameterServerLoop if is_parameter_server(strategy) else Loop
            loop(config, dataset, model, strategy, chief, write_dir, validation, sigterm).run()
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if not chief:
        return ([], model) if return_model else []
    runs.Run(model_dir).restore(model)
    rows = evaluation.evaluate_run(config, dataset, model)
    if config.trainer.tensorboard_summaries:
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
        run = runs.Run(warm.source.runtime.model_dir)
        if not run.finished:
            if not warm.train_if_missing:
                logging.warning("%s: the run %s is not finished; starting from its latest checkpoint", warm.what,
                                run.dir)
            else:
                logging.info("%s: training the run it starts from (%s) into %s", config.model.name, warm.what,
                             run.dir)
                run = runs.ensure_trained(warm.source)
        params = run.params
        if warm.model and params.model.name != warm.model:
            raise config_lib.ConfigError(f"{run.dir}/params.yaml: {warm.what} needs a {warm.model!r} run, this is a "
                                         f"{params.model.name!r} run")
        if warm.check is not None:
            warm.check(params, run.dir)
        source = registry.create_model(params, dataset)
        try:
            run.restore(source)
        except config_lib.ConfigError as e:
            raise config_lib.ConfigError(f"{e} (the run {run.dir} does not fit this data set: "
                                         f"{dataset.num_users} users, {dataset.num_items} items)") from None
        warm.load(model, source)
        logging.info("%s: %s initialised from the run %s", config.model.name, warm.what, run.dir)
