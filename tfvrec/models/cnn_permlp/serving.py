"""The export of a CNN-PerMLP run: a tag-recommendation SavedModel (not retrieval).

``serving_default`` takes ``user`` (string ids ``[B]``) and ``image`` (encoded JPEG / PNG
bytes ``[B]``), and ``k`` (default ``export.default_k``, at most the vocabulary and
``export.max_k``); it returns ``tags`` (strings ``[B, K]``, best first), ``scores``
(``[B, K]``, the mean over the patches, eq. 2) and ``personalized`` (``[B]``, false for
a user with no training posts: the mean user embedding, the non-personalized answer).
The image goes through the ops of training (`tfvrec.models.cnn_permlp.patches`) inside
the graph, so the served tags are the in-process ones. An image that does not decode
fails the request with INVALID_ARGUMENT naming the problem.
"""

import numpy as np
import tensorflow as tf

from tfvrec.models.cnn_permlp import patches as patches_lib
from tfvrec.models.cnn_permlp.config import square_side
from tfvrec.serving.module import _signature_function
from tfvrec.serving.parts import ExportError, SignatureInput, assert_that, checked_range, with_checks


class TagServingModule(tf.Module):
    def __init__(self, config, dataset, model):
        super().__init__()
        section = model.section
        if not model.uses_pixels:
            raise ExportError(f"cnn_permlp: this run ({model.evaluation_note}) scores data set items, not images; "
                              "only runs on pixels (features: cnn or histogram) can be exported")
        posts = model.posts
        self.network = model.network
        self.side, self.patch, self.num_patches = square_side(section), section.patch_size, section.num_patches
        self.num_tags = posts.num_tags
        self.max_k = min(config.export.max_k, self.num_tags)
        self.default_k = min(config.export.default_k, self.max_k)
        trained = posts.trained_users() & bool(section.personalized)
        user_ids = np.asarray(dataset.user_ids).astype(str)[trained]
        self.user_ids, self.example_user = user_ids, (str(user_ids[0]) if len(user_ids) else "unknown")
        rows = np.flatnonzero(trained).astype(np.int64)
        self.users = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(user_ids if len(user_ids) else ["\x00"]),
                                                tf.constant(rows if len(rows) else [-1], tf.int64)),
            default_value=-1)
        self.tag_ids = tf.Variable(np.asarray(posts.tag_ids).astype(str).astype(object), trainable=False,
                                   dtype=tf.string, name="tag_ids")
        self.index_kind = "none"
        self.signature_docs = {}
        self.signature_functions = self._signatures()

    def _patches(self, image):
        ok = tf.strings.length(image) > 0
        image = with_checks([assert_that(ok, "image: empty bytes (send the encoded JPEG / PNG file)")], image)
        return patches_lib.patches_of_bytes(image, self.side, self.patch, self.num_patches)

    def tags(self, user, image, k):
        k = checked_range(k, 1, self.max_k, "k")
        rows = self.users.lookup(user)
        patches = tf.map_fn(self._patches, image, fn_output_signature=tf.TensorSpec(
            [self.num_patches, self.patch, self.patch, 3], tf.uint8))
        shape = tf.shape(patches)
        flat = tf.reshape(patches, tf.concat([[-1], shape[2:]], 0))
        scores = self.network({"user": tf.repeat(rows, self.num_patches), "patch": flat})
        scores = tf.reduce_mean(tf.reshape(scores, [shape[0], self.num_patches, -1]), axis=1)
        top = tf.math.top_k(scores, k=k)
        return {"tags": tf.gather(self.tag_ids, top.indices), "scores": top.values, "personalized": rows >= 0}

    def _signatures(self):
        inputs = [SignatureInput("user", tf.TensorSpec([None], tf.string), None,
                                 "user ids [B] (a user without training posts gets the non-personalized tags)"),
                  SignatureInput("image", tf.TensorSpec([None], tf.string), None,
                                 "encoded image bytes [B] (JPEG, PNG, GIF, BMP)"),
                  SignatureInput("k", tf.TensorSpec([], tf.int32), tf.constant(self.default_k, tf.int32),
                                 f"K, 1..{self.max_k} (default {self.default_k})")]
        self.signature_docs["serving_default"] = {
            "doc": "top-K tags for (user, image) posts, scores averaged over the image's patches (eq. 2)",
            "inputs": {i.name: i.doc + ("" if i.default is not None else " (required)") for i in inputs},
            "outputs": {"tags": "[B, K] tag strings, best first", "scores": "[B, K] tag scores",
                        "personalized": "[B] false: the user had no training posts (non-personalized answer)"}}
        return {"serving_default": _signature_function("serving_default", inputs, self.tags)}

    def warmup_requests(self):
        return [("serving_default", {"user": np.array([self.example_user], object),
                                     "image": np.array([example_png(self.side)], object)})]

    def describe(self):
        return {"index": self.index_kind, "num_tags": self.num_tags, "num_users": len(self.user_ids),
                "max_k": self.max_k, "default_k": self.default_k, "square_size": self.side,
                "patch_size": self.patch, "num_patches": self.num_patches, "signatures": self.signature_docs}


def example_png(side):
    """A grey PNG image of ``side`` × ``side`` (warm-up requests)."""
    return tf.io.encode_png(tf.fill([side, side, 3], tf.constant(128, tf.uint8))).numpy()


def build(config, dataset, model, new_items=None, replace_items=False):
    if new_items is not None:
        raise ExportError("cnn_permlp recommends tags, not items: `tfvrec index` does not apply")
    return TagServingModule(config, dataset, model)
