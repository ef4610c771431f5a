"""What a run leaves in TensorBoard after its final evaluation: the HParams row with the test
metrics (`tfvrec.inspect.hparams`) and the Embedding Projector (`tfvrec.inspect.projector`)."""
import os

from absl import logging

from tfvrec.inspect.hparams import write_hparams
from tfvrec.inspect.projector import index_vectors, write_projector


def tensorboard_command(run_dir):
    return f"tensorboard --logdir {os.path.join(run_dir, 'tensorboard')}"


def summarize_run(config, dataset, model, rows):
    """Write the run's HParams row, test-metric scalars and projector files; returns the projector's
    description (or None: the model's export is not a retrieval index)."""
    run_dir = config.runtime.model_dir
    write_hparams(run_dir, config, rows)
    vectors = index_vectors(config, dataset, model)
    written = None
    if vectors is not None:
        written = write_projector(os.path.join(run_dir, "tensorboard", "projector"), dataset, *vectors)
        logging.info("Projector: %s", written)
    return written
