"""Why HASC recommends an image: ``tfvrec explain`` and the Python API `explain` / `explain_run`.

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

    from tfvrec.explain import explain_run
    explanation = explain_run("runs/hasc_flickr_fs", user="12", item="3051")
    explanation.aspects           # {"upload": 0.21, "social": 0.47, "creator": 0.32}
    explanation.followees[:3]     # [("877", 0.08), ...]
"""
import dataclasses
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

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


def _index_of(ids, value, table, flag, dataset):
    found = np.flatnonzero(ids == str(value))
    if not len(found):
        from tfvrec.data.errors import DataError
        raise DataError(os.path.join(dataset.path, table),
                        f"{flag} {str(value)!r} is not an id in this file (ids look like "
                        f"{', '.join(map(str, ids[:3]))})")
    return int(found[0])


def explain(model, dataset, user, item, top=5):
    """`Explanation` of ``model``'s score of image ``item`` for ``user`` (data set ids, str).

    ``top``: how many uploads / followees to list (0: all). ``model`` is a trained
    `tfvrec.models.hasc.HASC`, ``dataset`` the data set it was built on.
    """
    if not hasattr(model, "explain"):
        from tfvrec.config import ConfigError
        raise ConfigError(f"explanations come from HASC's attention; this model is a {type(model).__name__}")
    u = _index_of(dataset.user_ids, user, "users.tsv", "user", dataset)
    i = _index_of(dataset.item_ids, item, "items.tsv", "item", dataset)
    out = {k: v[0] for k, v in model.explain([u], [i]).items()}
    gamma = dict(zip(("upload", "social", "creator"), (float(g) for g in out["gamma"])))

    def ranked(ids, weights, names):
        present = ids >= 0
        ids, weights = ids[present], weights[present]
        order = np.argsort(-weights, kind="stable")
        order = order[:top] if top else order
        return [(str(names[ids[k]]), float(weights[k])) for k in order], int(present.sum())

    uploads, num_uploads = ranked(out["uploads"], out["alpha"], dataset.item_ids)
    followees, num_followees = ranked(out["followees"], out["beta"], dataset.user_ids)
    creator = int(out["creator"])
    return Explanation(user=str(dataset.user_ids[u]), item=str(dataset.item_ids[i]), score=float(out["score"]),
                       creator=str(dataset.user_ids[creator]) if creator >= 0 else None, aspects=gamma,
                       uploads=uploads, followees=followees, num_uploads=num_uploads,
                       num_followees=num_followees, attention=model.attention_kind)


def explain_run(run_dir, user, item, top=5):
    """`explain` on a trained HASC run directory (loads its config, data set and best weights)."""
    from tfvrec import config as config_lib
    params = config_lib.read_params(run_dir)
    if params.model.name != "hasc":
        raise config_lib.ConfigError(f"{os.path.join(run_dir, 'params.yaml')}: explanations need a HASC run; "
                                     f"this run's model.name is {params.model.name!r}")
    from tfvrec.training import trainer
    _, dataset, model = trainer.load_run(run_dir)
    return explain(model, dataset, user, item, top=top)


def _run_cli(args):
    explanation = explain_run(args.run, args.user, args.item, top=args.top)
    print(json.dumps(explanation.to_dict(), indent=1) if args.json else explanation.format())


def register_cli(subparsers):
    p = subparsers.add_parser("explain", help="explain a HASC score: aspect importance γ, top uploads (α) and "
                                              "followed users (β)")
    p.add_argument("--run", required=True, help="run directory of a trained HASC model")
    p.add_argument("--user", required=True, help="user id as in the data set's users.tsv")
    p.add_argument("--item", required=True, help="image id as in the data set's items.tsv")
    p.add_argument("--top", type=int, default=5, help="uploads / followed users to list (0: all; default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_run_cli)
