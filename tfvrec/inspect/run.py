"""What a run leaves in TensorBoard after its final evaluation: the HParams row with the test
metrics (`tfvrec.inspect.hparams`) and the Embedding Projector (`tfvrec.inspect.projector`)."""
import os
import shutil
import subprocess
import sys

from absl import logging

from tfvrec.errors import ConfigError
from tfvrec.runs import Run

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


def tensorboard_cli(args):
    """``tfvrec tensorboard`` (its arguments: `tfvrec.inspect.cli`)."""
    for run_dir in args.run:
        if not Run(run_dir).exists():
            raise ConfigError(f"{run_dir}: not a tfvrec run directory (no params.yaml)")
    logdir = os.path.join(args.run[0], "tensorboard") if len(args.run) == 1 else ",".join(
        f"{os.path.basename(os.path.abspath(r))}:{os.path.join(r, 'tensorboard')}" for r in args.run)
    command = tensorboard_command(args.run[0]) if len(args.run) == 1 else f"tensorboard --logdir_spec {logdir}"
    if not args.start:
        print(command)
        return
    executable = shutil.which("tensorboard") or os.path.join(os.path.dirname(sys.executable), "tensorboard")
    flag = "--logdir" if len(args.run) == 1 else "--logdir_spec"
    subprocess.run([executable, flag, logdir, "--port", str(args.port)], check=False)
