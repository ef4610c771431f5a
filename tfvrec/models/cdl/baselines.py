"""The baselines of CDL's experiments (Lei et al., §6.1.2), as evaluation scorers (``eval.baselines``).

* ``twonets`` — the same image and user towers and distance, trained pointwise: each pair
  (U, I, y) with p = σ(b − D(U, I)) and binary cross-entropy, on the positive and negative
  images of the same triplets, the same optimiser, epochs and validation rule as the run
  (model ``cdl`` with ``loss: pointwise``, p = σ(b − D) with a learned offset b), trained once into
  ``<model_dir>/baselines/twonets-<digest>/`` and reused.
* ``borda_features`` — Borda count over pretrained CNN features: every training image of the
  user ranks the candidates by Euclidean distance to itself; a candidate earns C − 1 − rank
  points from each such ranking (C candidates) and the points are summed. The features are
  ``data.features`` when set (a feature set of the data set), else the frozen ImageNet
  EfficientNet-Lite0 features of the images, centred on the catalogue's mean feature and
  L2-normalised first (`centred_unit_vectors`): the distance of unit vectors ranks as the
  cosine does. The paper names Euclidean distance (§6.1.2); on pooled CNN features, which
  share a large common component, both it and the plain cosine give every user much the same
  "central" images first whatever they like — on the posters Euclidean scores below random
  (P@20 0.170 vs 0.197), the plain cosine at random (0.186), the centred cosine 0.292
  (docs/models/cdl.md).
* ``borda_colour`` — the same Borda count over a hand-crafted colour histogram (a joint RGB
  histogram, 4 levels per channel, of the image at the tower's size).
"""
import copy
import dataclasses

import numpy as np

from tfvrec import config as config_lib
from tfvrec import runs
from tfvrec.models.cdl import images
from tfvrec.registry import register_baseline


def centred_unit_vectors(vectors):
    """``vectors`` minus their mean, then L2-normalised (rows); all-zero rows (no image) stay zero,
    equally far from every unit vector, and take no part in the mean."""
    vectors = np.asarray(vectors, np.float32)
    real = np.abs(vectors).sum(axis=1) > 0
    out = np.zeros_like(vectors)
    if real.any():
        centred = vectors[real] - vectors[real].mean(axis=0)
        out[real] = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return out


class BordaScorer:
    """Borda count over the user's training images: Σ_j (C − 1 − rank_j(candidate)), rank by ‖f − f_j‖
    (``normalise``: of `centred_unit_vectors`, i.e. by the cosine of the centred features)."""

    def __init__(self, vectors, profiles, max_profile=200, normalise=False):
        self.vectors = centred_unit_vectors(vectors) if normalise else np.asarray(vectors, np.float32)
        self.profiles = [np.asarray(p[-max_profile:], np.int64) for p in profiles]
        self.num_items = len(self.vectors)

    def _user(self, user, items):
        profile = self.profiles[user]
        if not len(profile):
            return np.zeros(len(items), np.float32)
        f, g = self.vectors[profile], self.vectors[items]
        d = (f * f).sum(1)[:, None] - 2 * f @ g.T + (g * g).sum(1)[None]  # [P, C] squared distances
        ranks = np.argsort(np.argsort(d, axis=1, kind="stable"), axis=1, kind="stable")
        return (len(items) - 1 - ranks).sum(axis=0).astype(np.float32)

    def score(self, users, items):
        return np.stack([self._user(int(u), row) for u, row in zip(users, np.asarray(items))])


def colour_histograms(pixels, levels=4):
    """Joint RGB histograms ``[n, levels³]`` (each sums to 1) of uint8 images ``[n, h, w, 3]``."""
    q = (np.asarray(pixels, np.int64) * levels) // 256
    codes = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    codes = codes.reshape(len(pixels), -1)
    out = np.zeros((len(pixels), levels ** 3), np.float32)
    np.add.at(out, (np.repeat(np.arange(len(pixels)), codes.shape[1]), codes.ravel()), 1.0)
    return out / codes.shape[1]


def _profiles(dataset):
    return dataset.train_items_by_user()


@register_baseline("borda_features")
def _borda_features(dataset, config, heldout):
    if config.data.features:
        vectors = dataset.features(config.data.features)
    else:
        vectors, _ = images.backbone_features(dataset, config.data.cache_dir, skip_bad=config.model.cdl.skip_bad_images)
    return BordaScorer(vectors, _profiles(dataset), normalise=True)


@register_baseline("borda_colour")
def _borda_colour(dataset, config, heldout):
    size = min(config.model.cdl.image_size, 128)
    pixels, _, _ = images.load_pixels(dataset, size, config.data.cache_dir, skip_bad=config.model.cdl.skip_bad_images)
    return BordaScorer(colour_histograms(pixels), _profiles(dataset))


def twonets_config(config):
    """The TwoNets run behind the ``twonets`` baseline of CDL run ``config`` (of any model: CDL's
    default experiment on the run's data, seed and directory when the run is not CDL's)."""
    host = config
    if config.model.name != "cdl":
        base = config_lib.get_experiment("cdl")
        base.data, base.runtime = copy.deepcopy(config.data), copy.deepcopy(config.runtime)
        config = base
    run = copy.deepcopy(config)
    run.model.cdl.loss = "pointwise"
    config_lib.baseline_trainer(host, "twonets", run.trainer)  # the row's recipe (eval.baseline_trainer)
    run.eval = dataclasses.replace(config.eval, baselines=[], baseline_trainer={})
    run.runtime.model_dir = runs.baseline_run_dir(config.runtime.model_dir, run, "twonets")
    return run


@register_baseline("twonets")
def _twonets(dataset, config, heldout):
    return runs.ensure_trained(twonets_config(config)).load(dataset=dataset)[2]
