"""Training under ``tf.distribute.experimental.ParameterServerStrategy``: embedding tables
larger than one machine, sharded over parameter servers.

``runtime.distribution_strategy: parameter_server`` with a ``TF_CONFIG`` naming ``chief``,
``worker`` and ``ps`` tasks (TensorFlow's own cluster format). The chief coordinates
(`tf.distribute.experimental.coordinator.ClusterCoordinator`, through Keras ``fit``): every
variable is split over the parameter servers by a `MinSizePartitioner` (at least
``runtime.ps_min_shard_bytes`` per shard, at most one shard per server), so BPR-MF's P and
Q and HASC's P, Q, W, X live in pieces on the servers, and the workers run the training
steps on batches from the model's training stream (`tfvrec.inputs`, built on each worker).

What differs from the other strategies (`tfvrec.training.loop`): training is asynchronous
(workers update the servers' variables without waiting for each other), so a run is not
bit-for-bit reproducible and an epoch's input is the training stream with the seed
``runtime.seed + epoch`` on every worker (each worker draws its own batches). The run state
is committed at each epoch end only — a killed run resumes at the last finished epoch,
retraining the interrupted one. Checkpoints hold every table as one variable (the shards
are joined when saved), so a checkpoint restores under any number of parameter servers,
or under another strategy (tested: 2 servers → 1 server and → no cluster).
"""
import time

import tensorflow as tf
from absl import logging

from tfvrec import inputs
from tfvrec.runs.state import RunState
from tfvrec.training.loop import Loop


def is_parameter_server(strategy):
    return isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)


class ParameterServerLoop(Loop):
    """The epoch loop of `Loop` (validation, early stopping, run state, checkpoints, TensorBoard)
    with each epoch trained by Keras ``fit`` through the cluster coordinator."""

    def run(self):
        trainer, model = self.trainer, self.model
        state, prefix = self.store.load()
        if state is None:
            _, steps = inputs.training_stream(self.config, self.dataset, model, self.config.runtime.seed)
            state = RunState(steps_per_epoch=steps)
        else:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
            state.resumes += 1
            state.step, state.loss_sums, state.epoch_seconds = 0, {}, 0.0  # epoch-end records only
            print(f"tfvrec train: resuming {self.model_dir} after epoch {state.completed_epochs} (parameter "
                  "servers: the interrupted epoch is trained again)", flush=True)
        self.store.clean()
        self.publisher.clean()
        steps = state.steps_per_epoch
        for epoch in range(state.completed_epochs, trainer.epochs):
            if state.done:
                break
            number = epoch + 1
            if trainer.learning_rate_decay != 1.0:
                tf.keras.backend.set_value(model.optimizer.lr, trainer.learning_rate * trainer.learning_rate_decay
                                           ** epoch)
            seed = self.config.runtime.seed + epoch

            def dataset_fn(context, seed=seed):
                return inputs.training_stream(self.config, self.dataset, model, seed)[0]
            started = time.time()
            history = model.fit(tf.keras.utils.experimental.DatasetCreator(dataset_fn), epochs=1,
                                steps_per_epoch=steps, verbose=0)
            entry = {name: float(values[-1]) for name, values in history.history.items()}
            entry["lr"] = float(tf.keras.backend.get_value(model.optimizer.lr))
            stop, improved = self._validate(state, entry, number)
            entry["epoch_seconds"] = time.time() - started
            if trainer.verbose:
                print(f"Epoch {number}/{trainer.epochs} (parameter servers): "
                      + " - ".join(f"{k}: {v:.4g}" for k, v in entry.items()), flush=True)
            state.history.append(entry)
            state.train_seconds += entry["epoch_seconds"]
            state.completed_epochs, state.batches_consumed = number, state.batches_consumed + steps
            state.done = number >= trainer.epochs or stop
            state.stopped_early = stop
            where = {"epoch": number, "step": 0}
            self._commit(state, where)
            self.publisher.publish(state, where)
            self._summarize_epoch(entry, epoch)
            if improved:
                logging.info("epoch %d: best so far, kept in %s", number, self.publisher.best_directory)
        if not state.done:
            state.done = True
            self._commit(state, {"epoch": state.completed_epochs, "step": 0})
            self.publisher.publish(state, {"epoch": state.completed_epochs, "step": 0})
        for writer in self.writers.values():
            writer.flush()
        return state
