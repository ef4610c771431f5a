"""Export a trained run as a TensorFlow Serving SavedModel (``tfvrec export`` / ``tfvrec index``).

Layout (what ``tensorflow_model_server --model_config_file`` loads)::

    export/models.config                 model_config_list, one entry per exported model
    export/models/<name>/<version>/      saved_model.pb, variables/, assets.extra/
        assets.extra/tfvrec_export.json      what the export holds (model, run, index, signatures, ops)
        assets.extra/tf_serving_warmup_requests   replayed by TF Serving (and tfvrec serve) at load

A version is written under a hidden temporary name in ``<name>/`` and renamed into
place only once it is complete, saved, re-loaded and answered its warm-up
requests, so a model server polling ``<name>/`` never sees a half-written version.

Signatures (named inputs and outputs; ``k`` is a request input ≤ ``export.max_k``):

- ``serving_default``: top-K ``item_ids`` [B, K] (external ids) and ``scores`` [B, K]
  for a query: ``user`` [B] (known user ids), or for cold start ``profile``
  [B, P] (item ids, "" pads) and, for content models, ``profile_embeddings``
  [B, P, F] (raw item features, all-zero rows pad). Send exactly one query input.
  ``exclude`` [B, E] (item ids, "" pads) removes items from the answer; with
  ``export.exclude_seen`` a user's training items (a profile's own items) are
  always removed. Rows with fewer than K eligible items are padded with item id
  "" and score ``PAD_SCORE``.
- ``score``: exact model ``scores`` [B, C] of ``items`` [B, C] for the same query inputs.
- ``embed_items`` (content models): candidate ``embeddings`` [N, d] of new item ``features`` [N, F].
- model-specific signatures from the model's adapter (``explain`` for HASC, ...).

An unknown user or item id, ``k`` out of range, or a malformed query fails the
request with INVALID_ARGUMENT naming the problem (``tf.debugging.Assert`` in the
graph, which is what a TF Serving client sees too).

Retrieval: ``export.index = brute_force`` scores every item with stock TF ops
(matmul + top_k; the export is checked to hold no custom op). ``scann`` uses the
tfrs ScaNN layer (saved with the ``Scann`` op namespace whitelisted) to fetch
``max(rerank_candidates, K) + exclusions`` candidates, which are then re-scored
exactly: returned scores are always the model's exact scores. Models whose index
vectors only approximate their score (HASC, SPEC §5) re-rank that way under brute
force as well.
"""
import dataclasses
import errno
import inspect
import json
import math
import os
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec.serving.model_config import (METADATA_FILE, WARMUP_FILE, existing_versions, export_metadata,
                                         update_models_config)

SCANN_NAMESPACE = "Scann"
PAD_SCORE = float(np.finfo(np.float32).min)  # score of padding entries (item id "")
TMP_PREFIX = ".tmp-"


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why and what to do."""


# ----------------------------------------------------------------------------- what a model contributes

@dataclasses.dataclass
class SignatureInput:
    name: str
    spec: tf.TensorSpec
    default: Optional[tf.Tensor] = None  # None: required
    doc: str = ""


@dataclasses.dataclass
class ExtraSignature:
    """A model-specific signature: ``impl(module, **inputs) -> {output name: tensor}``."""
    inputs: List[SignatureInput]
    impl: Callable
    doc: str = ""
    outputs: Dict[str, str] = dataclasses.field(default_factory=dict)  # output name -> doc


@dataclasses.dataclass
class ServingParts:
    """What one model puts into its serving SavedModel (built by its adapter, `adapters.py`).

    The index holds ``item_vectors``; a query vector's dot product with them (or the
    negated squared L2 distance, ``distance="squared_l2"``) is the model's score,
    exactly, unless ``exact_user_scores`` is given (two-stage models: the index
    ranks candidates, ``exact_user_scores`` re-ranks them).
    """
    model_name: str
    item_ids: np.ndarray  # [N] external ids, rows of the index
    item_vectors: np.ndarray  # [N, d]
    user_ids: Optional[np.ndarray] = None  # [U] users with a stored query vector
    user_vectors: Optional[np.ndarray] = None  # [U, d]
    seen: Optional[list] = None  # per user: catalogue rows of the training items (exclude_seen)
    distance: str = "dot_product"
    # Cold start from item vectors: (vectors [B, P, d], mask [B, P]) -> query [B, d].
    profile_query: Optional[Callable] = None
    # Raw item features -> item vectors, in-graph: features [n, F] -> [n, d].
    embed_items: Optional[Callable] = None
    feature_dim: int = 0
    # Two-stage models: (user rows [B], item rows [B, C]) -> exact scores [B, C].
    exact_user_scores: Optional[Callable] = None
    trackables: Dict[str, object] = dataclasses.field(default_factory=dict)  # saved with the module
    extra_signatures: Dict[str, ExtraSignature] = dataclasses.field(default_factory=dict)
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)  # query kind -> how it is computed
    warmup_inputs: Dict[str, dict] = dataclasses.field(default_factory=dict)  # extra signature -> inputs


def _signature_function(name, inputs, impl):
    """A tf.function whose named arguments (with SignatureDef defaults) are ``inputs``."""
    names = [i.name for i in inputs]
    required = [i for i in inputs if i.default is None]
    if inputs[:len(required)] != required:
        raise ValueError(f"signature {name}: required inputs must come before inputs with defaults")

    def fn(*args, **kwargs):
        bound = dict(zip(names, args))
        bound.update(kwargs)
        return impl(**bound)

    fn.__signature__ = inspect.Signature([
        inspect.Parameter(i.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          default=inspect.Parameter.empty if i.default is None else i.default)
        for i in inputs])
    fn.__name__ = name
    # autograph=False: the code is written with tf ops (no Python control flow on tensors); converting it
    # would only cost seconds per export.
    specs = [tf.TensorSpec(i.spec.shape, i.spec.dtype, name=i.name) for i in inputs]
    return tf.function(fn, autograph=False, input_signature=specs)


def _assert(condition, message, *data):
    """An InvalidArgument error with ``message`` (and ``data``) when ``condition`` is false."""
    return tf.debugging.Assert(condition, [message, *data], summarize=8)


def _with_checks(checks, tensor):
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def checked_range(value, low, high, what):
    """``value`` (a scalar request input), failing the request unless ``low ≤ value ≤ high``."""
    ok = tf.logical_and(value >= low, value <= high)
    return _with_checks([_assert(ok, f"{what} must be between {low} and {high}; got {what} =", value)], value)


def _check_parts(parts, item_vectors):
    """What an adapter hands over must be consistent: clear errors instead of a broken SavedModel."""
    name = parts.model_name
    if parts.distance not in ("dot_product", "squared_l2"):
        raise ExportError(f"{name}: distance must be dot_product or squared_l2, got {parts.distance!r}")
    for what, ids in (("item", parts.item_ids), ("user", parts.user_ids)):
        if ids is None:
            continue
        ids = np.asarray([str(i) for i in ids])
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ExportError(f"{name}: {what} id {str(unique[counts > 1][0])!r} appears {counts.max()} times; "
                              f"{what} ids must be unique")
        if (ids == "").any():
            raise ExportError(f"{name}: an empty {what} id (\"\" is the padding value of requests)")
    if parts.user_ids is not None:
        vectors = np.asarray(parts.user_vectors)
        if vectors.shape != (len(parts.user_ids), item_vectors.shape[1]):
            raise ExportError(f"{name}: expected user vectors [{len(parts.user_ids)}, {item_vectors.shape[1]}], "
                              f"got {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ExportError(f"{name}: user vectors contain NaN or inf; is the run diverged?")
        if parts.seen is not None and len(parts.seen) != len(parts.user_ids):
            raise ExportError(f"{name}: {len(parts.seen)} seen-item lists for {len(parts.user_ids)} users")


# ----------------------------------------------------------------------------- the serving module

class ServingModule(tf.Module):
    """The object saved as the SavedModel: catalogue, lookup tables, index, signatures."""

    def __init__(self, parts: ServingParts, export_config):
        super().__init__(name="tfvrec_serving")
        item_vectors = np.asarray(parts.item_vectors, np.float32)
        if item_vectors.ndim != 2 or len(item_vectors) != len(parts.item_ids) or len(item_vectors) == 0:
            raise ExportError(f"{parts.model_name}: expected item vectors [{len(parts.item_ids)}, d], "
                              f"got {item_vectors.shape}")
        if not np.isfinite(item_vectors).all():
            raise ExportError(f"{parts.model_name}: item vectors contain NaN or inf; is the run diverged?")
        _check_parts(parts, item_vectors)
        c = export_config
        self.parts = parts
        self.num_items, self.dim = item_vectors.shape
        self.index_kind = c.index
        if c.max_k < 1 or c.default_k < 1 or c.default_k > c.max_k:
            raise ExportError(f"export.max_k={c.max_k} and export.default_k={c.default_k}: "
                              "need 1 ≤ default_k ≤ max_k")
        self.max_k = min(c.max_k, self.num_items)
        self.default_k = min(c.default_k, self.max_k)
        self.exclude_seen = c.exclude_seen
        self.rerank_candidates = max(1, c.rerank_candidates)
        self.two_stage = parts.exact_user_scores is not None
        self.distance = parts.distance

        item_ids = [str(i) for i in parts.item_ids]
        self.item_ids = tf.Variable(tf.constant(item_ids, tf.string), trainable=False, name="item_ids")
        self.item_vectors = tf.Variable(item_vectors, trainable=False, name="item_vectors")
        if self.distance == "squared_l2":
            self.item_sq_norms = tf.Variable(np.sum(item_vectors ** 2, axis=1), trainable=False,
                                             name="item_sq_norms")
        self.item_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(item_ids, tf.string),
                                                tf.range(self.num_items, dtype=tf.int64)), default_value=-1)
        self.has_users = parts.user_ids is not None
        if self.has_users:
            user_ids = [str(u) for u in parts.user_ids]
            self.num_users = len(user_ids)
            self.user_ids = tf.Variable(tf.constant(user_ids, tf.string), trainable=False, name="user_ids")
            self.user_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(user_ids, tf.string),
                                                    tf.range(self.num_users, dtype=tf.int64)), default_value=-1)
            self.user_vectors = tf.Variable(np.asarray(parts.user_vectors, np.float32), trainable=False,
                                            name="user_vectors")
            seen = parts.seen if parts.seen is not None else [np.zeros(0, np.int64)] * self.num_users
            lengths = np.array([len(s) for s in seen], np.int64)
            self.seen_splits = tf.Variable(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                                           trainable=False, name="seen_splits")
            values = np.concatenate([np.asarray(s, np.int64) for s in seen]) if len(seen) else np.zeros(0, np.int64)
            self.seen_values = tf.Variable(values.astype(np.int64), trainable=False, name="seen_values")
        for name, trackable in parts.trackables.items():
            setattr(self, name, trackable)

        self.index_build_seconds = 0.0
        if c.index == "scann":
            self.scann = self._build_scann(item_vectors, c)
        elif c.index != "brute_force":
            raise ExportError(f"export.index must be 'brute_force' or 'scann', got {c.index!r}")

        self.query_inputs = self._query_inputs()
        self.signature_docs = {}
        self.signature_functions = self._build_signatures()

    # -- index ---------------------------------------------------------------------------
    def _build_scann(self, item_vectors, c):
        try:
            import tensorflow_recommenders as tfrs
            from scann.scann_ops.py import scann_ops  # noqa: F401  (registers the Scann ops)
        except ImportError as e:
            raise ExportError(f"export.index=scann needs the scann package ({e}); pip install 'scann[tf]'") from None
        n = self.num_items
        leaves = c.scann_num_leaves or max(1, int(round(math.sqrt(n))))
        leaves = min(leaves, n)
        to_search = c.scann_leaves_to_search or max(1, int(math.ceil(leaves / 10)))
        to_search = min(to_search, leaves)
        self.scann_settings = {"num_leaves": leaves, "num_leaves_to_search": to_search,
                               "dimensions_per_block": c.scann_dimensions_per_block,
                               "distance_measure": self.distance}
        start = time.time()
        layer = tfrs.layers.factorized_top_k.ScaNN(
            k=self.max_k, distance_measure=self.distance, num_leaves=leaves, num_leaves_to_search=to_search,
            dimensions_per_block=c.scann_dimensions_per_block, name="scann_index")
        layer.index(tf.constant(item_vectors))
        self.index_build_seconds = time.time() - start
        return layer

    def _index_scores(self, queries):
        """Brute force: ``[B, N]`` index scores (higher is better)."""
        dots = tf.matmul(queries, self.item_vectors, transpose_b=True)
        if self.distance == "dot_product":
            return dots
        return 2.0 * dots - self.item_sq_norms[tf.newaxis, :] - tf.reduce_sum(tf.square(queries), -1, keepdims=True)

    def _exact(self, query, rows):
        """Exact model scores ``[B, C]`` of catalogue rows ``[B, C]`` for the query."""
        vectors = tf.gather(self.item_vectors, rows)
        if self.distance == "dot_product":
            scores = tf.einsum("bd,bcd->bc", query["vectors"], vectors)
        else:
            scores = -tf.reduce_sum(tf.square(query["vectors"][:, tf.newaxis, :] - vectors), -1)
        if self.two_stage:
            n_users = tf.size(query["user_rows"])
            user_scores = self.parts.exact_user_scores(query["user_rows"], rows[:n_users])
            scores = tf.concat([tf.cast(user_scores, tf.float32), scores[n_users:]], axis=0)
        return scores

    # -- id resolution -------------------------------------------------------------------
    def lookup_users(self, user):
        """User ids ``[B]`` → rows; InvalidArgument naming the unknown ids."""
        if not self.has_users:
            raise ValueError("this export has no user table")
        rows = self.user_table.lookup(user)
        unknown = tf.boolean_mask(user, rows < 0)
        message = "unknown user id(s), not in this export (for a new user send a cold-start profile instead):"
        return _with_checks([_assert(tf.equal(tf.size(unknown), 0), message, unknown)], rows)

    def lookup_items(self, items, what="items", allow_padding=False):
        """Item ids (any shape) → rows; "" is padding (row -1) when ``allow_padding``."""
        rows = self.item_table.lookup(items)
        bad = rows < 0
        if allow_padding:
            bad = tf.logical_and(bad, tf.not_equal(items, ""))
        unknown = tf.boolean_mask(items, bad)
        return _with_checks([_assert(tf.equal(tf.size(unknown), 0),
                                     f"unknown item id(s) in {what}, not in this export catalogue:",
                                     unknown)], rows)

    # -- queries -------------------------------------------------------------------------
    def _query_inputs(self):
        inputs = []
        if self.has_users:
            inputs.append(SignatureInput("user", tf.TensorSpec([None], tf.string), tf.constant([], tf.string),
                                         "user ids [B] (known users)"))
        if self.parts.profile_query is not None:
            inputs.append(SignatureInput("profile", tf.TensorSpec([None, None], tf.string),
                                         tf.zeros([0, 0], tf.string),
                                         "cold start: item ids [B, P] a user liked; \"\" pads"))
            if self.parts.embed_items is not None:
                inputs.append(SignatureInput(
                    "profile_embeddings", tf.TensorSpec([None, None, self.parts.feature_dim], tf.float32),
                    tf.zeros([0, 0, self.parts.feature_dim], tf.float32),
                    f"cold start from raw item features [B, P, {self.parts.feature_dim}]; all-zero rows pad"))
        if not inputs:
            raise ExportError(f"{self.parts.model_name}: the adapter gives no way to form a query")
        return inputs

    def query(self, inputs):
        """Query vectors ``[B, d]``, exclusions (ragged rows) and user rows for a request."""
        vectors, exclusions, sizes = [], [], []
        user_rows = tf.zeros([0], tf.int64)
        if "user" in inputs:
            user_rows = self.lookup_users(inputs["user"])
            vectors.append(tf.gather(self.user_vectors, user_rows))
            seen = tf.RaggedTensor.from_row_splits(self.seen_values, self.seen_splits, validate=False)
            seen = tf.gather(seen, user_rows)
            if not self.exclude_seen:
                seen = seen[:, :0]
            exclusions.append(seen)
            sizes.append(tf.size(inputs["user"]))
        if "profile" in inputs:
            profile = inputs["profile"]
            rows = self.lookup_items(profile, "profile", allow_padding=True)
            mask = rows >= 0
            nonempty = tf.reduce_all(tf.reduce_any(mask, axis=1))
            rows = _with_checks([_assert(nonempty, "every profile row needs at least one item id")], rows)
            safe = tf.where(mask, rows, tf.zeros_like(rows))
            vectors.append(self.parts.profile_query(tf.gather(self.item_vectors, safe), mask))
            own = tf.ragged.boolean_mask(safe, mask)
            exclusions.append(own if self.exclude_seen else own[:, :0])
            sizes.append(tf.shape(profile)[0])
        if "profile_embeddings" in inputs:
            features = inputs["profile_embeddings"]
            mask = tf.reduce_any(tf.not_equal(features, 0.0), axis=-1)
            nonempty = tf.reduce_all(tf.reduce_any(mask, axis=1))
            finite = tf.reduce_all(tf.math.is_finite(features))
            features = _with_checks([
                _assert(nonempty, "every profile_embeddings row needs at least one non-zero vector"),
                _assert(finite, "profile_embeddings contains NaN or inf")], features)
            shape = tf.shape(features)
            embedded = self.parts.embed_items(tf.reshape(features, [-1, self.parts.feature_dim]))
            embedded = tf.reshape(embedded, tf.concat([shape[:2], [self.dim]], 0))
            vectors.append(self.parts.profile_query(embedded, mask))
            exclusions.append(tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64),
                                                               tf.zeros([shape[0]], tf.int64)))
            sizes.append(shape[0])
        names = " or ".join(i.name for i in self.query_inputs)
        given = tf.add_n([tf.cast(s > 0, tf.int32) for s in sizes])
        check = _assert(tf.equal(given, 1), f"send exactly one non-empty query input: {names}")
        query_vectors = _with_checks([check], tf.concat([tf.cast(v, tf.float32) for v in vectors], axis=0))
        return {"vectors": query_vectors, "exclusions": tf.concat(exclusions, axis=0), "user_rows": user_rows}

    def _explicit_exclusions(self, exclude, batch):
        """``exclude`` [B, E] item ids → ragged catalogue rows (unknown ids and "" dropped)."""
        n = tf.shape(exclude)[0]
        check = _assert(tf.logical_or(tf.equal(n, 0), tf.equal(n, batch)),
                        "exclude needs one row per query (or none); rows, queries:", n, batch)
        exclude = _with_checks([check], exclude)
        exclude = tf.cond(tf.equal(n, 0), lambda: tf.fill([batch, 0], ""), lambda: exclude)
        rows = self.item_table.lookup(exclude)
        return tf.ragged.boolean_mask(rows, rows >= 0)

    # -- retrieval -----------------------------------------------------------------------
    def _excluded(self, candidates, exclusions):
        """Whether each candidate row ``[B, n]`` is among its query's exclusions."""
        n_items = tf.constant(self.num_items, tf.int64)
        keys = tf.sort(tf.concat([[-1], exclusions.value_rowids() * n_items + exclusions.flat_values], 0))
        batch = tf.shape(candidates, out_type=tf.int64)[0]
        wanted = tf.range(batch)[:, tf.newaxis] * n_items + candidates
        flat = tf.reshape(wanted, [-1])
        at = tf.searchsorted(keys, flat, out_type=tf.int64)
        found = tf.gather(keys, tf.minimum(at, tf.size(keys, out_type=tf.int64) - 1))
        return tf.reshape(tf.equal(found, flat), tf.shape(candidates))

    def top_k(self, query, k, exclude=None):
        """Top-``k`` ``(scores [B, k], rows [B, k])``; excluded or missing entries score -inf."""
        q, exclusions = query["vectors"], query["exclusions"]
        batch = tf.shape(q)[0]
        if exclude is not None:
            exclusions = tf.concat([exclusions, self._explicit_exclusions(exclude, batch)], axis=1)
        neg_inf = tf.constant(-np.inf, tf.float32)
        if self.index_kind == "brute_force":
            scores = self._index_scores(q)
            pairs = tf.stack([exclusions.value_rowids(), exclusions.flat_values], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, pairs, tf.fill(tf.shape(pairs)[:1], neg_inf))
            if not self.two_stage:
                top = tf.math.top_k(scores, k)
                return top.values, tf.cast(top.indices, tf.int64)
            n = tf.minimum(tf.maximum(self.rerank_candidates, k), self.num_items)
            first = tf.math.top_k(scores, n)
            candidates = tf.cast(first.indices, tf.int64)
            valid = first.values > neg_inf
        else:
            extra = tf.cast(tf.reduce_max(tf.concat([exclusions.row_lengths(), [0]], 0)), tf.int32)
            n = tf.minimum(tf.maximum(self.rerank_candidates, k) + extra, self.num_items)
            _, candidates = self.scann(q, k=n)
            candidates = tf.cast(candidates, tf.int64)
            short = tf.maximum(k - tf.shape(candidates)[1], 0)  # ScaNN may find fewer than asked
            candidates = tf.pad(candidates, [[0, 0], [0, short]], constant_values=-1)
            valid = tf.logical_and(candidates >= 0, candidates < self.num_items)
            candidates = tf.where(valid, candidates, tf.zeros_like(candidates))
            valid = tf.logical_and(valid, tf.logical_not(self._excluded(candidates, exclusions)))
        exact = tf.where(valid, self._exact(query, candidates), neg_inf)
        top = tf.math.top_k(exact, k)
        return top.values, tf.gather(candidates, top.indices, batch_dims=1)

    def check_k(self, k):
        ok = tf.logical_and(k >= 1, k <= self.max_k)
        message = f"k must be between 1 and max_k={self.max_k} (export.max_k of this export); got k ="
        return _with_checks([_assert(ok, message, k)], k)

    def recommend(self, k, exclude=None, **query_inputs):
        k = self.check_k(k)
        query = self.query(query_inputs)
        scores, rows = self.top_k(query, k, exclude)
        valid = scores > tf.constant(-np.inf, tf.float32)
        ids = tf.where(valid, tf.gather(self.item_ids, rows), tf.constant("", tf.string))
        return {"item_ids": ids, "scores": tf.where(valid, scores, tf.constant(PAD_SCORE, tf.float32))}

    def score(self, items, **query_inputs):
        query = self.query(query_inputs)
        rows = self.lookup_items(items, "items")
        batch_ok = tf.equal(tf.shape(items)[0], tf.shape(query["vectors"])[0])
        rows = _with_checks([_assert(batch_ok, "items needs one row per query; rows, queries:",
                                     tf.shape(items)[0], tf.shape(query["vectors"])[0])], rows)
        return {"scores": self._exact(query, rows)}

    # -- signatures ----------------------------------------------------------------------
    def _build_signatures(self):
        q = self.query_inputs
        k_input = SignatureInput("k", tf.TensorSpec([], tf.int32), tf.constant(self.default_k, tf.int32),
                                 f"K, 1..{self.max_k} (default {self.default_k})")
        exclude = SignatureInput("exclude", tf.TensorSpec([None, None], tf.string), tf.zeros([0, 0], tf.string),
                                 "item ids [B, E] never to return; \"\" pads; unknown ids are ignored")
        items = SignatureInput("items", tf.TensorSpec([None, None], tf.string), None, "item ids [B, C] to score")
        signatures = {
            "serving_default": (q + [k_input, exclude], self.recommend,
                                "top-K recommendations for one kind of query",
                                {"item_ids": "[B, K] external item ids, best first (\"\" pads)",
                                 "scores": "[B, K] exact model scores"}),
            "score": ([items] + q, self.score, "exact model scores of given items for a query",
                      {"scores": "[B, C] model scores of `items`"}),
        }
        if self.parts.embed_items is not None:
            features = SignatureInput("features", tf.TensorSpec([None, self.parts.feature_dim], tf.float32), None,
                                      f"raw item features [N, {self.parts.feature_dim}]")
            signatures["embed_items"] = ([features], lambda features: {"embeddings": self.parts.embed_items(features)},
                                         "candidate vectors of new items (what the index holds)",
                                         {"embeddings": f"[N, {self.dim}] item vectors"})
        for name, extra in self.parts.extra_signatures.items():
            signatures[name] = (extra.inputs, lambda _impl=extra.impl, **kw: _impl(self, **kw), extra.doc,
                                extra.outputs)
        functions = {}
        for name, (inputs, impl, doc, outputs) in signatures.items():
            functions[name] = _signature_function(name, inputs, impl)
            self.signature_docs[name] = {"doc": doc, "inputs": {i.name: i.doc + ("" if i.default is not None
                                                                                 else " (required)")
                                                                for i in inputs},
                                         "outputs": outputs}
        return functions


# ----------------------------------------------------------------------------- writing versions

def saved_model_ops(path):
    """Op types in a SavedModel's graph and function library."""
    from tensorflow.python.saved_model import loader_impl
    saved = loader_impl.parse_saved_model(path)
    ops = set()
    for meta in saved.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def custom_ops(ops):
    """Ops outside stock TensorFlow: namespaced (``Scann>...``) or not registered by core TF."""
    from tensorflow.python.framework import op_def_registry
    return sorted(op for op in ops if ">" in op or op_def_registry.get(op) is None)


def _warmup_requests(module, parts):
    """``(signature, inputs)`` pairs replayed at load: one recommendation and one score request."""
    requests = []
    if module.has_users:
        query = {"user": np.array([str(parts.user_ids[0])], object)}
    else:
        query = {"profile": np.array([[str(parts.item_ids[0])]], object)}
    requests.append(("serving_default", dict(query)))
    requests.append(("score", dict(query, items=np.array([[str(parts.item_ids[0])]], object))))
    for name, inputs in parts.warmup_inputs.items():
        requests.append((name, inputs))
    return requests


def _write_warmup(path, model_name, requests):
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def signature_defs(path):
    """``{signature name: SignatureDef}`` of a SavedModel's ``serve`` MetaGraph (as TF Serving reads it)."""
    from tensorflow.python.saved_model import loader_impl
    saved = loader_impl.parse_saved_model(path)
    for meta in saved.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}
    raise ExportError(f"{path}: no MetaGraph tagged 'serve'")


def _verify(path, requests):
    """Load the written SavedModel and answer the warm-up requests (never publish a broken export)."""
    loaded = tf.saved_model.load(path)
    defs = signature_defs(path)
    for signature, inputs in requests:
        # The Python loader does not apply SignatureDef defaults (TF Serving does): add them.
        args = {name: tf.make_ndarray(proto) for name, proto in defs[signature].defaults.items()}
        args.update(inputs)
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in args.items()})
        for name, value in outputs.items():
            if value.dtype.is_floating and not np.isfinite(value.numpy()).all():
                raise ExportError(f"{path}: signature {signature} output {name} is not finite on a warm-up request")


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path):
    for directory, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(directory)


def write_version(module, base_path, version=None, metadata=None, verify=True):
    """Save ``module`` as ``<base_path>/<version>`` atomically; return ``(version, path)``."""
    base_path = os.path.abspath(base_path)
    os.makedirs(base_path, exist_ok=True)
    explicit = version is not None
    if explicit and (not isinstance(version, int) or version < 1):
        raise ExportError(f"version must be a positive integer, got {version!r}")
    if explicit and os.path.exists(os.path.join(base_path, str(version))):
        raise ExportError(f"{base_path}/{version} already exists; versions are immutable, choose another")
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base_path)
    try:
        options = tf.saved_model.SaveOptions(
            namespace_whitelist=[SCANN_NAMESPACE] if module.index_kind == "scann" else None)
        start = time.time()
        tf.saved_model.save(module, tmp, signatures=module.signature_functions, options=options)
        ops = saved_model_ops(tmp)
        custom = custom_ops(ops)
        scann = module.index_kind == "scann"
        allowed = {op for op in custom if scann and op.startswith(SCANN_NAMESPACE + ">")}
        if set(custom) - allowed:
            raise ExportError(f"the export holds ops stock TensorFlow Serving cannot run: "
                              f"{sorted(set(custom) - allowed)}")
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        requests = _warmup_requests(module, module.parts)
        _write_warmup(os.path.join(extra, WARMUP_FILE), module.parts.model_name, requests)
        info = dict(metadata or {})
        info.update(custom_ops=custom, ops=sorted(ops), save_seconds=round(time.time() - start, 3))
        with open(os.path.join(extra, METADATA_FILE), "w") as f:
            json.dump(info, f, indent=2, sort_keys=False)
        if verify:
            _verify(tmp, requests)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a server running as another user must read it
        _fsync_tree(tmp)  # on disk before it becomes visible: a crash cannot publish a truncated file
        for _ in range(100):  # another exporter may take the next number first: take the one after
            if not explicit:
                version = max(existing_versions(base_path), default=0) + 1
            final = os.path.join(base_path, str(version))
            try:
                if os.path.exists(final):
                    raise FileExistsError(errno.EEXIST, "exists", final)
                os.rename(tmp, final)  # atomic; fails on an existing non-empty directory
                break
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if explicit:
                    raise ExportError(f"{final} appeared while exporting; versions are immutable") from None
        else:
            raise ExportError(f"{base_path}: could not claim a version number (100 attempts)")
        _fsync_dir(base_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version, final


def default_models_config(out_dir):
    """``export/models/<name>`` → ``export/models.config``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(out_dir))), "models.config")


def model_name_of(out_dir):
    name = os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
    if not name or name.startswith("."):
        raise ExportError(f"--out {out_dir!r}: the last path component names the model; got {name!r}")
    return name


# ----------------------------------------------------------------------------- entry points

def export_model(config, dataset, model, out_dir, version=None, models_config=None, new_items=None,
                 replace_items=False, run_dir="", verify=True):
    """Export an in-memory model; returns a dict describing the written version."""
    from tfvrec.serving import adapters
    name = model_name_of(out_dir)
    adapter = adapters.get_adapter(config.model.name)
    parts = adapter(config, dataset, model, new_items=new_items, replace_items=replace_items)
    start = time.time()
    module = ServingModule(parts, config.export)
    build_seconds = time.time() - start
    metadata = {
        "model_name": name, "model": config.model.name, "run": os.path.abspath(run_dir) if run_dir else "",
        "dataset": getattr(dataset, "name", ""), "num_items": module.num_items,
        "num_users": module.num_users if module.has_users else 0, "dim": module.dim,
        "index": config.export.index, "distance": module.distance, "two_stage": module.two_stage,
        "max_k": module.max_k, "default_k": module.default_k, "exclude_seen": module.exclude_seen,
        "rerank_candidates": module.rerank_candidates,
        "scann": getattr(module, "scann_settings", None), "index_build_seconds": round(module.index_build_seconds, 3),
        "module_build_seconds": round(build_seconds, 3),
        "signatures": module.signature_docs, "query_notes": parts.notes,
        "pad_score": PAD_SCORE, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    version, path = write_version(module, out_dir, version=version, metadata=metadata, verify=verify)
    config_path = models_config if models_config is not None else default_models_config(out_dir)
    if config_path:
        try:
            update_models_config(config_path, name, out_dir)
        except ValueError as e:
            raise ExportError(f"version {version} was written to {path}, but {e}") from None
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    logging.info("Exported %s version %d to %s (%d items, %s index, %.1f MB)", name, version, path,
                 module.num_items, config.export.index, size / 2 ** 20)
    return {"name": name, "version": version, "path": path, "models_config": config_path, "bytes": size,
            "index_build_seconds": module.index_build_seconds, "signatures": sorted(module.signature_functions),
            "custom_ops": json.load(open(os.path.join(path, "assets.extra", METADATA_FILE)))["custom_ops"]}


# Settings `tfvrec index` carries over from the version it follows (unless given again).
INHERITED_SETTINGS = ("default_k", "exclude_seen", "rerank_candidates")


def apply_export_overrides(config, index=None, max_k=None, sets=()):
    from tfvrec import config as config_lib
    for assignment in sets:
        if not assignment.split("=", 1)[0].strip().startswith("export."):
            raise config_lib.ConfigError(f"--set {assignment}: only export.* keys can change at export time")
        config_lib.override(config, config_lib.parse_set(assignment), source=f"--set {assignment}")
    if index is not None:
        config_lib.override(config, {"export": {"index": index}}, source="--index")
    if max_k is not None:
        config_lib.override(config, {"export": {"max_k": max_k}}, source="--max_k")
    return config


def export_run(run_dir, out_dir, version=None, index=None, max_k=None, sets=(), models_config=None,
               new_items_path=None, replace_items=False, verify=True):
    """Export the best checkpoint of a trained run directory (``tfvrec export`` / ``tfvrec index``)."""
    from tfvrec.training import trainer
    config, dataset, model = trainer.load_run(run_dir)
    if new_items_path is not None:  # `tfvrec index`: keep the export settings of the version it follows
        versions = existing_versions(os.path.abspath(out_dir))
        previous = export_metadata(os.path.join(os.path.abspath(out_dir), str(versions[-1]))) if versions else {}
        inherited = [f"export.{key}={previous[key]}" for key in INHERITED_SETTINGS if key in previous]
        if index is None and "index" in previous:
            index = previous["index"]
        if max_k is None and "max_k" in previous:
            max_k = previous["max_k"]
        sets = inherited + list(sets)
    apply_export_overrides(config, index=index, max_k=max_k, sets=sets)
    new_items = None
    if new_items_path is not None:
        from tfvrec.data.features import load_features
        new_items = load_features(new_items_path)
    return export_model(config, dataset, model, out_dir, version=version, models_config=models_config,
                        new_items=new_items, replace_items=replace_items, run_dir=run_dir, verify=verify)
