"""Why HASC recommends an image: ``tfvrec explain``, the Python API `explain` / `explain_run`,
and `attention`, the in-graph function the export's ``explain`` signature runs.

HASC's hierarchical attention is its explanation (Wu et al., §4.5 and Figure 5): for
a user and an image,

* the aspect importance γ: how much the score leans on the user's own uploads
  (upload coherence), on the users they follow (social influence) and on the image's
  creator (creator admiration); an aspect the user has no data for (no uploads, no
  follows, an image without a creator, or an aspect switched off in the config) gets 0,
  and the rest sum to 1;
* within the upload aspect, the user's uploaded images with their weights α, and
  within the social aspect, the followed users with their weights β (each sums to 1
  over the whole list; the output shows the ``top`` largest).

Ids are the data set's own (``users.tsv`` / ``items.tsv``)::

    tfvrec explain --run runs/hasc_flickr_fs --user 12 --item 3051 [--top 5] [--json]

    from tfvrec.models.hasc.explain import explain_run
    explanation = explain_run("runs/hasc_flickr_fs", user="12", item="3051")
    explanation.aspects           # {"upload": 0.21, "social": 0.47, "creator": 0.32}
    explanation.followees[:3]     # [("877", 0.08), ...]
"""
import json
import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.runs import Run
from tfvrec.models.embedding import gather
from tfvrec import config as config_lib

ASPECT_LABELS = {"upload": "upload coherence", "social": "social influence", "creator": "creator admiration"}


@dataclasses.dataclass
class Explanation:
    """The hierarchical attention of one (user, image) pair, with data set ids."""

    user: str
    item: str
    score: float  # HASC's R̂_ai (eq. 3)
    creator: Optional[str]  # C_i, None when the image has no creator
    aspects: Dict[str, float]  # γ: upload, social, creator
    uploads: List[Tuple[str, float]]  # (uploaded image, α), largest first, the top ones
    followees: List[Tuple[str, float]]  # (followed user, β), largest first, the top ones
    num_uploads: int  # |L_a| as the model sees it (after the max_uploads cap)
    num_followees: int  # |S_a| (after the max_followees cap)
    attention: str  # "att" (learned) or "avg" (uniform weights)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["uploads"] = [{"item": i, "weight": w} for i, w in self.uploads]
        out["followees"] = [{"user": u, "weight": w} for u, w in self.followees]
        return out

    def format(self):
        lines = [f"HASC explanation: user {self.user}, image {self.item} (score {self.score:.4f}; "
                 f"creator {self.creator if self.creator is not None else '-'}; attention {self.attention})",
                 "Aspect importance γ:"]
        for aspect, weight in self.aspects.items():
            lines.append(f"  {ASPECT_LABELS[aspect]:<19} {weight:6.3f}  {'█' * int(round(weight * 30))}")
        for title, rows, total, what in (("Uploaded images (α)", self.uploads, self.num_uploads, "image"),
                                         ("Followed users (β)", self.followees, self.num_followees, "user")):
            lines.append(f"{title}: top {len(rows)} of {total}" if total else f"{title}: none")
            width = max((len(r[0]) for r in rows), default=0)
            lines += [f"  {what} {ident:<{width}}  {weight:6.3f}" for ident, weight in rows]
        return "\n".join(lines)


def attention(model, users, items, top=0):
    """HASC's hierarchical attention for (user, item) pairs — the one implementation behind
    `explain`, ``tfvrec explain`` and the export's ``explain`` signature (tensors in and out,
    so it runs eagerly or inside a SavedModel's graph).

    ``users``, ``items``: int ``[B]`` (model rows). ``top``: how many uploads / followees to
    keep per list, largest weight first (0: all of them). Returns ``score`` [B] (R̂_ai,
    eq. 3), ``gamma`` [B, 3] (upload, social, creator; a masked aspect gets 0),
    ``creator`` [B] (−1: none), ``uploads`` / ``followees`` [B, T] (rows, −1 pads) with
    their weights ``alpha`` / ``beta`` [B, T] (0 pads), ``num_uploads`` / ``num_followees`` [B]
    (list lengths after the caps).
    """
    users = tf.cast(tf.convert_to_tensor(users), tf.int64)
    items = tf.cast(tf.convert_to_tensor(items), tf.int64)[:, tf.newaxis]
    ctx = model.user_context(users)
    creators = gather(model.item_creator, items)
    batch = tf.shape(users, out_type=tf.int64)[0]
    top = tf.convert_to_tensor(top, tf.int32)

    def ranked(members, weights, rows):
        w = tf.RaggedTensor.from_value_rowids(tf.cast(weights, tf.float32), rows, nrows=batch).to_tensor(-1.0)
        m = tf.RaggedTensor.from_value_rowids(members, rows, nrows=batch).to_tensor(tf.constant(-1, tf.int64))
        width = tf.where(top > 0, top, tf.shape(w)[1])
        short = tf.maximum(width - tf.shape(w)[1], 0)
        w = tf.pad(w, [[0, 0], [0, short]], constant_values=-1.0)
        m = tf.pad(m, [[0, 0], [0, short]], constant_values=-1)
        best = tf.math.top_k(w, width)  # stable: equal weights keep list order
        chosen = tf.gather(m, best.indices, batch_dims=1)
        valid = chosen >= 0
        return tf.where(valid, chosen, -1), tf.where(valid, best.values, 0.0)

    uploads, alpha = ranked(ctx["uploads"], ctx["alpha"], ctx["upload_rows"])
    followees, beta = ranked(ctx["followees"], ctx["beta"], ctx["followee_rows"])
    return {"score": model.score_with_context(ctx, items)[0][:, 0],
            "gamma": tf.cast(model.aspect_weights(ctx, creators)[:, 0], tf.float32), "creator": creators[:, 0],
            "uploads": uploads, "alpha": alpha, "followees": followees, "beta": beta,
            "num_uploads": tf.cast(ctx["upload_count"], tf.int32),
            "num_followees": tf.cast(ctx["followee_count"], tf.int32)}


def attention_arrays(model, users, items, top=0):
    """`attention` as numpy arrays."""
    return {k: v.numpy() for k, v in attention(model, np.asarray(users, np.int64), np.asarray(items, np.int64),
                                                 top).items()}


def explanations(model, dataset, users, items, top=3):
    """Per (user, item): the aspect importance γ (weights) and the top uploads by α and followees by β
    (lines) — HASC's explanation of a recommendation, as `tfvrec report` shows it (``ModelSpec.explain``)."""
    out = attention_arrays(model, users, items, top=top)
    entries = []
    for n in range(len(items)):
        uploads = [str(dataset.item_ids[r]) for r in out["uploads"][n] if r >= 0]
        followees = [str(dataset.user_ids[r]) for r in out["followees"][n] if r >= 0]
        entries.append({"weights": dict(zip(("upload", "social", "creator"), map(float, out["gamma"][n]))),
                        "lines": [f"α: {', '.join(uploads) or '-'}", f"β: {', '.join(followees) or '-'}"]})
    return entries


def summaries(model, dataset, users):
    """TensorBoard histograms of the attention for ``users`` (rows), each with one of their
    training images: the aspect importance γ and the entropy of α (uploads) and β (followees)."""
    seen = dataset.train_items_by_user()
    users = np.asarray([u for u in users if len(seen[u])], np.int64)
    if not len(users):
        return {}
    items = np.asarray([seen[u][0] for u in users], np.int64)
    out = attention_arrays(model, users, items)

    def entropy(weights):
        w = np.clip(weights, 1e-12, 1.0)
        return -(np.where(weights > 0, weights * np.log(w), 0.0)).sum(axis=1)

    result = {f"gamma/{aspect}": out["gamma"][:, k] for k, aspect in enumerate(("upload", "social", "creator"))}
    result["attention_entropy/alpha_uploads"] = entropy(out["alpha"])
    result["attention_entropy/beta_followees"] = entropy(out["beta"])
    return result


def _index_of(ids, value, table, flag, dataset):
    found = np.flatnonzero(ids == str(value))
    if not len(found):
        raise DataError(os.path.join(dataset.path, table),
                        f"{flag} {str(value)!r} is not an id in this file (ids look like "
                        f"{', '.join(map(str, ids[:3]))})")
    return int(found[0])


def explain(model, dataset, user, item, top=5):
    """`Explanation` of ``model``'s score of image ``item`` for ``user`` (data set ids, str).

    ``top``: how many uploads / followees to list (0: all). ``model`` is a trained
    `tfvrec.models.hasc.model.HASC`, ``dataset`` the data set it was built on.
    """
    if not hasattr(model, "user_context"):
        raise ConfigError(f"explanations come from HASC's attention; this model is a {type(model).__name__}")
    u = _index_of(dataset.user_ids, user, "users.tsv", "user", dataset)
    i = _index_of(dataset.item_ids, item, "items.tsv", "item", dataset)
    out = {k: v[0] for k, v in attention_arrays(model, [u], [i], top).items()}
    gamma = dict(zip(("upload", "social", "creator"), (float(g) for g in out["gamma"])))

    def named(rows, weights, names):
        return [(str(names[r]), float(w)) for r, w in zip(rows, weights) if r >= 0]

    creator = int(out["creator"])
    return Explanation(user=str(dataset.user_ids[u]), item=str(dataset.item_ids[i]), score=float(out["score"]),
                       creator=str(dataset.user_ids[creator]) if creator >= 0 else None, aspects=gamma,
                       uploads=named(out["uploads"], out["alpha"], dataset.item_ids),
                       followees=named(out["followees"], out["beta"], dataset.user_ids),
                       num_uploads=int(out["num_uploads"]), num_followees=int(out["num_followees"]),
                       attention=model.attention_kind)


def explain_run(run_dir, user, item, top=5):
    """`explain` on a trained HASC run directory (loads its config, data set and best weights)."""
    params = config_lib.read_params(run_dir)
    if params.model.name != "hasc":
        raise ConfigError(f"{os.path.join(run_dir, 'params.yaml')}: explanations need a HASC run; "
                                     f"this run's model.name is {params.model.name!r}")
    _, dataset, model = Run(run_dir).load()
    return explain(model, dataset, user, item, top=top)


def run_cli(args):
    """``tfvrec`` verb of `tfvrec.models.hasc.cli` (its arguments there)."""
    explanation = explain_run(args.run, args.user, args.item, top=args.top)
    print(json.dumps(explanation.to_dict(), indent=1) if args.json else explanation.format())
