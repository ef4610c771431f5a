"""The baselines of CuratorNet's Table 2 (Cartagena et al., §4.3), as evaluation scorers.

Registered with `tfvrec.registry.register_baseline` (``eval.baselines``):

* ``visrank`` — VisRank (Kang et al. 2017; Messina et al. 2018), eq. 15:
  score(u, i) = max_{j ∈ P_u} cosine(f_i, f_j), over the user's whole training history
  and the raw item content (the paper's ResNet embeddings; here ``data.features`` or
  the artist one-hot vectors, for which the cosine is 1 for the same artist, else 0).
* ``vbpr`` — VBPR (`tfvrec.models.curatornet.vbpr`), trained here on the training split with
  ``model.curatornet.vbpr`` settings, up to ``train_triplets`` in 10 chunks with early stopping
  on CuratorNet's own validation rule (split, protocol, metric, patience; the best chunk kept)
  when the run has a validation split; its weights are kept in
  ``<model_dir>/baselines/vbpr-<digest>/`` (the digest covers everything it depends on) so
  evaluating again does not retrain it.
* ``oracle`` — the perfect ranking: the user's held-out items first (AUC 1), the
  table's upper bound.
* ``random`` is the evaluation engine's own.
"""
import dataclasses
import hashlib
import json
import math
import os
import types

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec.models.curatornet import model as curatornet
from tfvrec.registry import register_baseline


class VisRankScorer:
    """score(u, i) = max over the user's profile items j of cosine(f_i, f_j) (eq. 15)."""

    def __init__(self, content, profiles):
        content = np.asarray(content, dtype=np.float32)
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        self.unit = content / np.maximum(norms, 1e-12)
        self.profiles = profiles  # list per user of item indices
        self.num_items = len(content)

    def _user_scores(self, user, items=None):
        profile = self.profiles[user]
        candidates = self.unit if items is None else self.unit[items]
        if not len(profile):
            return np.zeros(len(candidates), dtype=np.float32)
        return (self.unit[profile] @ candidates.T).max(axis=0)

    def score(self, users, items):
        return np.stack([self._user_scores(int(u), row) for u, row in zip(users, np.asarray(items))])

    def score_all(self, users):
        return np.stack([self._user_scores(int(u)) for u in users])


class OracleScorer:
    """1 for the user's held-out items, 0 otherwise: ranks the held-out items first."""

    def __init__(self, heldout, num_items):
        self.heldout, self.num_items = heldout, num_items

    def score(self, users, items):
        items = np.asarray(items)
        return np.stack([np.isin(row, self.heldout.get(int(u), ())) for u, row in zip(users, items)]).astype(float)

    def score_all(self, users):
        return self.score(users, np.broadcast_to(np.arange(self.num_items), (len(users), self.num_items)))


@register_baseline("visrank")
def _visrank(dataset, config, heldout):
    content, _ = curatornet.item_content(dataset, config)
    return VisRankScorer(content, dataset.train_items_by_user())


@register_baseline("oracle")
def _oracle(dataset, config, heldout):
    return OracleScorer(heldout, dataset.num_items)


@register_baseline("vbpr")
def _vbpr(dataset, config, heldout):
    return train_vbpr(dataset, config)


def vbpr_digest(dataset, config, description):
    """The VBPR cache key: its own settings, the content and how it is normalised, the profiles
    and clusters its D3/D4 sampler sees, the data, the validation rule and the seed."""
    c = config.model.curatornet.vbpr
    train = dataset.split("train")
    section = dataclasses.asdict(config.model.curatornet)
    return hashlib.sha256(json.dumps({
        "vbpr": dataclasses.asdict(c), "content": description,
        "curatornet": {k: section[k] for k in ("item_content", "feature_normalization", "max_profile_items",
                                               "cluster_dims", "num_clusters", "cluster_restarts",
                                               "silhouette_sample")},
        "data": dataclasses.asdict(config.data), "dataset": dataset.path, "train": len(train),
        "seed": config.runtime.seed, "validation": [config.trainer.validation_split,
                                                   config.trainer.validation_protocol,
                                                   config.trainer.validation_metric,
                                                   config.trainer.early_stopping_patience]},
        sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_vbpr(dataset, config):
    """Train (or reload) the VBPR baseline of ``model.curatornet.vbpr`` on the training split."""
    from tfvrec.models.curatornet.vbpr import VBPR

    c = config.model.curatornet.vbpr
    content, description = curatornet.item_content(dataset, config)
    if config.model.curatornet.item_content == "features" and config.model.curatornet.feature_normalization \
            == "standardize":
        # An affine change of f_i: the same model class, better conditioned for Adam.
        content = (content - content.mean(axis=0)) / np.sqrt(content.var(axis=0) + 1e-6)
    digest = vbpr_digest(dataset, config, description)
    cache = os.path.join(config.runtime.model_dir, "baselines", f"vbpr-{digest}")

    tf.keras.utils.set_random_seed(c.seed)
    model = VBPR(dataset.num_users, content, latent_dim=c.latent_dim, visual_dim=c.visual_dim, l2=c.l2,
                 num_triplets=c.train_triplets)
    model.compile(optimizer=tf.keras.optimizers.Adam(c.learning_rate))
    model({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
    checkpoint = tf.train.Checkpoint(model=model)
    saved = tf.train.latest_checkpoint(cache)
    if saved:
        checkpoint.restore(saved).expect_partial()
        logging.info("VBPR baseline: reloaded %s", saved)
        return model
    if c.sampling == "guidelines":
        model.sampler = curatornet.build_sampler(dataset, config, sampling="guidelines", guidelines=["D3", "D4"])
    chunks = 10  # the budget is trained in 10 chunks; with a validation split, each is validated
    steps = max(1, math.ceil(c.train_triplets / (c.batch_size * chunks)))
    trainer = types.SimpleNamespace(batch_size=c.batch_size, steps_per_epoch=steps, negatives_per_positive=1)
    ds, steps = model.make_train_dataset(dataset, trainer, c.seed)
    validate = _validation(dataset, config, model)
    logging.info("VBPR baseline: up to %d triplets (%s sampling)%s", steps * chunks * c.batch_size, c.sampling,
                 f", early stopping on validation {config.trainer.validation_metric}" if validate else
                 " (no validation split: the whole budget, last weights)")
    callbacks = [] if validate is None else [_BestOnValidation(validate, config.trainer.validation_metric,
                                                                config.trainer.early_stopping_patience)]
    model.fit(ds, epochs=chunks, steps_per_epoch=steps, callbacks=callbacks, verbose=2 if config.trainer.verbose else 0)
    tf.train.CheckpointManager(checkpoint, cache, max_to_keep=1).save()
    return model


class _BestOnValidation(tf.keras.callbacks.Callback):
    """Validates after each chunk, stops after ``patience`` chunks without gain, restores the best."""

    def __init__(self, validate, metric, patience):
        super().__init__()
        self.validate, self.metric, self.patience = validate, metric, patience
        self.best, self.best_weights, self.wait = None, None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = float(self.validate().metrics[self.metric])
        logging.info("VBPR baseline: chunk %d, validation %s = %.4f", epoch + 1, self.metric, value)
        if self.best is None or value > self.best:
            self.best, self.best_weights, self.wait = value, self.model.get_weights(), 0
        else:
            self.wait += 1
            self.model.stop_training = bool(self.patience) and self.wait >= self.patience

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _validation(dataset, config, model):
    """CuratorNet's own per-epoch validation (same split, protocol, metric, users) for VBPR, or None."""
    from tfvrec.data import splits
    from tfvrec.evaluation import user_items
    frame = splits.validation_frame(config, dataset)
    return None if frame is None else user_items.make_validation(config, dataset, model, frame)
