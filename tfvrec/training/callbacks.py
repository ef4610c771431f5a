"""Reading a run's training state (the callbacks of tfvrec 0.1.0 are gone).

The epoch loop, validation, early stopping and checkpoints are the trainer's own
(`tfvrec.training.trainer`), committed as one record (`tfvrec.training.runstate`);
Keras' ``BackupAndRestore`` could not restore the early-stopping state and the epoch
bookkeeping atomically with the weights, so a kill between them lost or repeated an epoch.
"""
from tfvrec.training import runstate

STATE_FILE = runstate.VIEW_FILE


class TrainingState:
    """Read-only: the committed state of ``model_dir`` (attributes of `runstate.RunState`)."""

    def __init__(self, model_dir):
        state = runstate.read_state(model_dir) or runstate.RunState()
        self.__dict__.update(state.to_json())
