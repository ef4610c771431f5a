"""Keras callbacks of the training engine: epoch checkpoints and validation with early stopping.

Both persist their state in the run directory (``training_state.json``), so a run
killed and started again continues with the same best value and patience count;
``tf.keras.callbacks.BackupAndRestore`` restores the model, optimizer and position.
"""
import json
import os
import time

import tensorflow as tf
from absl import logging

STATE_FILE = "training_state.json"


class TrainingState:
    """What a resumed run must remember beyond the weights."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, STATE_FILE)
        self.completed_epochs = 0
        self.done = False
        self.best_value = None
        self.best_epoch = None
        self.wait = 0
        self.history = []
        self.train_seconds = 0.0  # wall time of the finished epochs (validation included)
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.__dict__.update(json.load(f))

    def save(self):
        state = {k: v for k, v in self.__dict__.items() if k != "path"}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, self.path)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Keeps ``checkpoints/ckpt-N`` (model weights) after every epoch, and the epoch's wall time
    (counted per epoch, so a run killed and resumed still adds up its time correctly)."""

    def __init__(self, manager, state):
        super().__init__()
        self.manager, self.state = manager, state
        self._epoch_started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.time() - self._epoch_started
        self.state.completed_epochs = epoch + 1
        self.state.train_seconds += seconds
        self.state.history.append({**{k: float(v) for k, v in (logs or {}).items()}, "epoch_seconds": seconds})
        self.manager.save(checkpoint_number=epoch + 1)
        self.state.save()


class ValidationEarlyStopping(tf.keras.callbacks.Callback):
    """Evaluates a held-out split after each epoch (the papers' own protocol on a user
    subset), logs ``val_<metric>`` for the progbar and TensorBoard, keeps the best
    weights in ``checkpoints/best`` and stops after ``patience`` epochs without gain."""

    def __init__(self, evaluate_fn, metric, patience, best_manager, state):
        super().__init__()
        self.evaluate_fn, self.metric, self.patience = evaluate_fn, metric, patience
        self.best_manager, self.state = best_manager, state

    def on_epoch_end(self, epoch, logs=None):
        result = self.evaluate_fn()
        for name, value in result.metrics.items():
            if logs is not None:
                logs[f"val_{name}"] = value
        value = float(result.metrics[self.metric])
        logging.info("epoch %d: validation %s (%s) = %.4f", epoch + 1, self.metric, result.protocol, value)
        if self.state.best_value is None or value > self.state.best_value:
            self.state.best_value, self.state.best_epoch, self.state.wait = value, epoch + 1, 0
            self.best_manager.save(checkpoint_number=epoch + 1)
        else:
            self.state.wait += 1
            if self.patience and self.state.wait >= self.patience:
                logging.info("Early stopping: %s has not improved for %d epochs (best %.4f at epoch %d)",
                             self.metric, self.state.wait, self.state.best_value, self.state.best_epoch)
                self.model.stop_training = True
        self.state.save()
