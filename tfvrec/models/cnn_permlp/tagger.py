"""Top-K tags for a post from a trained run: the Python API behind ``tfvrec tags``.

::

    from tfvrec.models.cnn_permlp.tagger import Tagger
    tagger = Tagger("runs/cnn_permlp_synthetic")
    tagger.tags("u0042", image="photo.jpg", k=5)
    # {"tags": [...], "scores": [...], "personalized": True, "note": "..."}

The image goes through the patches of training (eq. 2) and the tag scores are averaged
over them. A user with no training post has no learned embedding: the answer is the
non-personalized one (the mean user embedding of eq. 6), and ``personalized`` is False
with a note saying so. Models without images (``features: embedding``, PITF) take
``item=`` (a data set item id) instead of an image.
"""
import json
import os

import numpy as np

from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.runs import Run
from tfvrec.models.cnn_permlp import patches as patches_lib
from tfvrec import config as config_lib
from tfvrec.models.cnn_permlp.config import square_side


class Tagger:
    def __init__(self, run_dir):
        config = config_lib.read_params(run_dir)
        if config.model.name != "cnn_permlp":
            raise ConfigError(f"{run_dir}: a {config.model.name!r} run; `tfvrec tags` needs a cnn_permlp run "
                              "(for user–item models: tfvrec recommend)")
        self.run_dir = run_dir
        self.config, self.dataset, self.model = Run(run_dir).load()
        self.posts = self.model.posts
        self.user_ids = np.asarray(self.dataset.user_ids).astype(str)
        self.item_ids = np.asarray(self.dataset.item_ids).astype(str)
        self.trained = self.posts.trained_users()

    def user_row(self, user):
        """``(row, personalized)``: -1 and False for a user without training posts."""
        found = np.flatnonzero(self.user_ids == str(user))
        if len(found) and self.trained[found[0]] and self.model.section.personalized:
            return int(found[0]), True
        return -1, False

    def note(self, user, personalized):
        if personalized:
            return f"personalized tags for user {str(user)[:100]!r}"
        if not self.model.section.personalized:
            return "tags of a non-personalized model (this run has no user term)"
        return (f"NON-PERSONALIZED fallback: user {str(user)[:100]!r} has no training posts in this run, so the "
                "tags come from the image alone (the mean user embedding)")

    def tags(self, user, image=None, item=None, k=5, only=None):
        """Top-``k`` tags for ``user`` and an image (a path or encoded bytes) or a data set ``item`` id;
        ``only``: rank just these tags (strings of the run's vocabulary; an unknown one is an error)."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= self.posts.num_tags:
            raise DataError("<k>", f"k must be an integer in 1..{self.posts.num_tags} (the number of tags), got {k!r}")
        row, personalized = self.user_row(user)
        model, section = self.model, self.model.section
        if self.model.uses_pixels:
            if image is None:
                if item is None:
                    raise DataError("<image>", "give an image (a path or its bytes)")
                cut = model.patch_table[self._item_image_row(item)]
            else:
                pixels = check_image(image)
                cut = patches_lib.patches_of(pixels, square_side(section), section.patch_size,
                                             section.num_patches).numpy()
            scores = model.score_patches(np.array([row], np.int64), cut[None]).numpy()[0]
        else:
            if image is not None:
                raise DataError(str(image)[:100], f"this run ({model.evaluation_note}) scores data set items, not "
                                                  "images: give --item")
            index = np.flatnonzero(self.item_ids == str(item))
            if not len(index):
                raise DataError(os.path.join(self.dataset.path, "items.tsv"),
                                f"item {str(item)[:100]!r} is not an item of this run's data set", key=str(item)[:100])
            scores = model.network({"user": np.array([row], np.int64), "item": index[:1].astype(np.int64)}
                                   ).numpy()[0]
        if only is not None:
            chosen = self.tag_index(only)
            masked = np.full_like(scores, -np.inf)
            masked[chosen] = scores[chosen]
            scores, k = masked, min(k, len(chosen))
        top = np.argsort(-scores, kind="stable")[:k]
        return {"user": str(user), "tags": [str(t) for t in self.posts.tag_ids[top]],
                "scores": [float(s) for s in scores[top]], "personalized": personalized,
                "note": self.note(user, personalized)}

    def tag_index(self, tags):
        """Indices of tag strings in the run's vocabulary; `DataError` naming an unknown one."""
        vocabulary = {str(t): n for n, t in enumerate(self.posts.tag_ids)}
        unknown = [str(t) for t in tags if str(t) not in vocabulary]
        if unknown:
            raise DataError("<tags>", f"unknown tag {unknown[0][:100]!r}: not in this run's vocabulary of "
                                      f"{len(vocabulary)} tags (tags used fewer than model.cnn_permlp.min_tag_count "
                                      "times were dropped)")
        return np.array([vocabulary[str(t)] for t in tags], np.int64)

    def _item_image_row(self, item):
        index = np.flatnonzero(self.item_ids == str(item))
        if not len(index) or self.model.image_row[index[0]] < 0:
            raise DataError(os.path.join(self.dataset.path, "items.tsv"),
                            f"item {str(item)[:100]!r} has no image in this run (only tagged items' images are "
                            "kept); give --image", key=str(item)[:100])
        return int(self.model.image_row[index[0]])


def check_image(image):
    """uint8 pixels ``[h, w, 3]`` of an image path or encoded bytes; `DataError` naming what is wrong."""
    if isinstance(image, (bytes, bytearray)):
        return patches_lib.decode_bytes(image, "<image bytes>")
    if not os.path.isfile(str(image)):
        raise DataError(str(image), "image file not found")
    return patches_lib.read_image(str(image))


def tag_names(run_tags, ids):
    """Tag strings of int tag ids, refusing an unknown id with a clear error."""
    ids = np.asarray(ids)
    bad = ids[(ids < 0) | (ids >= len(run_tags))]
    if len(bad):
        raise DataError("<tag ids>", f"unknown tag id {int(bad[0])}: this run has tag ids 0..{len(run_tags) - 1}")
    return [str(t) for t in np.asarray(run_tags)[ids]]


def run_cli(args):
    """``tfvrec`` verb of `tfvrec.models.cnn_permlp.cli` (its arguments there)."""
    if args.image is not None:  # a missing or broken image fails before the run is loaded
        check_image(args.image)
    answer = Tagger(args.run).tags(args.user, image=args.image, item=args.item, k=args.k,
                                         only=args.tag or None)
    if args.json:
        print(json.dumps(answer, indent=1))
        return
    print(answer["note"])
    for rank, (tag, score) in enumerate(zip(answer["tags"], answer["scores"]), 1):
        print(f"{rank:3d}  {tag}\t{score:.4f}")
