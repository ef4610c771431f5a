"""Per-epoch TensorBoard summaries of what the model learned (``<run>/tensorboard/epochs/``).

* Histograms: the row norms of every embedding table (a variable with one row per user
  or per item), the values of every trainable variable, and the model package's own
  (``ModelSpec.summaries``: HASC's γ per aspect and the entropy of α and β).
* Images (data sets with images): for a few fixed validation users, one row each of
  their training history and their top-K recommendations, the held-out hits outlined
  in green — how the recommendations look, epoch after epoch.
"""
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec.inspect.pictures import Thumbnails, grid, outlined
from tfvrec import registry

HIT = (40, 200, 60)
MAX_VARIABLES = 60  # weight histograms beyond these many variables are left out


def fixed_users(validation, count, seed):
    """``count`` validation users (rows), the same ones every epoch and on resume."""
    if validation is None or not count:
        return np.zeros(0, np.int64)
    users = np.unique(validation["user"].to_numpy(np.int64))
    if len(users) > count:
        users = np.sort(np.random.default_rng(seed).choice(users, count, replace=False))
    return users


def top_k(model, users, k, excluded):
    """Top-``k`` catalogue rows and scores ``[len(users), k]`` by the model's scores;
    ``excluded[n]``: the rows never recommended to ``users[n]`` (their training items)."""
    scores = np.array(model.score_all(np.asarray(users, np.int64)), np.float64)
    for n, rows in enumerate(excluded):
        scores[n, np.asarray(rows, np.int64)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def recommendation_grid(thumbnails, users, history, recommended, heldout, history_tiles=6):
    """One image: per user, up to ``history_tiles`` history images, a gap, the top-K with hits outlined."""
    rows = []
    blank = np.full((thumbnails.size, thumbnails.size, 3), 255, np.uint8)
    for n, u in enumerate(users):
        row = [thumbnails.tile(i) for i in history[u][-history_tiles:]]
        row += [blank] * (history_tiles - len(row)) + [blank]
        row += [outlined(thumbnails.tile(i), HIT) if i in heldout.get(int(u), ()) else thumbnails.tile(i)
                for i in recommended[n]]
        rows.append(row)
    return grid(rows)


def embedding_norms(model, dataset):
    """``{name: row norms}`` of the model's embedding tables (rows = users or items)."""
    out = {}
    for variable in model.trainable_variables:
        if len(variable.shape) == 2 and variable.shape[0] in (dataset.num_users, dataset.num_items):
            out[variable.name.replace(":0", "")] = np.linalg.norm(variable.numpy(), axis=1)
    return out


class EpochSummaries:
    """Writes the histograms and the recommendation grid after each epoch (the chief only)."""

    def __init__(self, config, dataset, model, validation, write_dir):
        self.config, self.dataset, self.model = config, dataset, model
        trainer = config.trainer
        self.users = fixed_users(validation, trainer.tensorboard_users, config.runtime.seed)
        self.k = trainer.tensorboard_k
        spec = registry.model_spec(config.model.name)
        self.model_summaries = registry.resolve(spec.summaries) if spec.summaries else None
        self.ranks_items = not spec.evaluation  # a tag recommender does not rank the catalogue
        self.thumbnails = Thumbnails(dataset, size=48)
        self.heldout = {}
        if validation is not None:
            for u, i in zip(validation["user"].to_numpy(np.int64), validation["item"].to_numpy(np.int64)):
                self.heldout.setdefault(int(u), set()).add(int(i))
        self._seen = None
        self.writer = tf.summary.create_file_writer(os.path.join(write_dir, "tensorboard", "epochs"))

    def write(self, epoch):
        with self.writer.as_default():
            for name, norms in embedding_norms(self.model, self.dataset).items():
                tf.summary.histogram(f"embedding_norms/{name}", norms, step=epoch)
            for variable in self.model.trainable_variables[:MAX_VARIABLES]:
                tf.summary.histogram(f"weights/{variable.name.replace(':0', '')}", variable, step=epoch)
            if self.model_summaries is not None and len(self.users):
                for name, values in self.model_summaries(self.model, self.dataset, self.users).items():
                    tf.summary.histogram(name, values, step=epoch)
            if self.ranks_items and self.thumbnails.available and len(self.users):
                if self._seen is None:
                    self._seen = self.dataset.train_items_by_user()
                recommended, _ = top_k(self.model, self.users, self.k, [self._seen[u] for u in self.users])
                picture = recommendation_grid(self.thumbnails, self.users, self._seen, recommended, self.heldout)
                tf.summary.image("recommendations/history_then_top_k", picture[np.newaxis], step=epoch,
                                 description=f"Each row: a validation user's last training images, a gap, then "
                                             f"the top-{self.k} recommendations; held-out hits outlined in green.")
        self.writer.flush()


def make_epoch_summaries(config, dataset, model, validation, write_dir):
    """The epoch summaries of a run, or None when ``trainer.tensorboard_summaries`` is off."""
    if not config.trainer.tensorboard_summaries:
        return None
    try:
        return EpochSummaries(config, dataset, model, validation, write_dir)
    except Exception as e:  # a picture problem must not stop training; it is said, not hidden
        logging.warning("TensorBoard epoch summaries disabled: %s", e)
        return None
