"""One TensorBoard HParams row per run: its resolved config keys and its final test metrics.

Written into ``<run>/tensorboard/hparams/``, so ``tensorboard --logdir runs/`` lists every
run (a HASC ablation grid, a CuratorNet λ sweep) side by side in the HParams tab. The
metrics are scalars ``test/<scorer>/<protocol>/<metric>`` (step 0) in the same directory;
the model's own are also ``test/<metric>`` (the columns the table shows by default).
"""
import dataclasses
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

# Config sections whose keys describe a run (runtime paths and export options do not).
SECTIONS = ("data", "trainer", "eval")
SKIPPED = {"data.path", "data.cache_dir", "eval.baselines", "eval.protocols", "eval.ks", "eval.table_metrics"}


def _flat(prefix, value, out):
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            _flat(f"{prefix}.{field.name}", getattr(value, field.name), out)
    elif isinstance(value, (bool, int, float, str)):
        out[prefix] = value
    elif isinstance(value, (list, tuple)):
        out[prefix] = ",".join(map(str, value))


def run_hparams(config):
    """The run's hyper-parameters: ``model.name``, its own section's keys, the data, trainer and
    evaluation keys and the seed, flattened to ``section.key`` → bool / int / float / str."""
    out = {"model.name": config.model.name}
    _flat(f"model.{config.model.name}", getattr(config.model, config.model.name), out)
    for section in SECTIONS:
        _flat(section, getattr(config, section), out)
    out["runtime.seed"] = config.runtime.seed
    synthetic = config.data.source == "synthetic"  # the world's keys only where it is the data
    return {k: v for k, v in out.items() if k not in SKIPPED and (synthetic or not k.startswith("data.synthetic."))}


def metric_tags(rows, model_name):
    """``{tag: value}`` of an evaluation table's rows ``[(scorer, EvalResult)]``."""
    tags = {}
    for scorer, result in rows:
        protocol = result.protocol.replace(":", "_")
        for metric, value in result.metrics.items():
            tags[f"test/{scorer}/{protocol}/{metric}"] = float(value)
            if scorer == model_name and f"test/{metric}" not in tags:
                tags[f"test/{metric}"] = float(value)  # the first protocol's
    return tags


def write_hparams(run_dir, config, rows, trial_id=None):
    """Write the run's HParams row and test-metric scalars; returns the metric tags written."""
    logdir = os.path.join(run_dir, "tensorboard", "hparams")
    tags = metric_tags(rows, config.model.name)
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp.hparams(run_hparams(config), trial_id=trial_id or os.path.basename(os.path.abspath(run_dir)))
        for tag, value in tags.items():
            tf.summary.scalar(tag, value, step=0)
    writer.flush()
    writer.close()
    return tags
