"""The in-graph serving module: where a served request is answered.

(One file of ~450 lines on purpose: `ServingModule` is one object whose query, retrieval and signature
methods share its tables and index; `tfvrec.retrieval` already holds the search itself.)

`ServingModule` is the object saved as the SavedModel (`tfvrec.serving.versions`
writes it). It holds the catalogue (item ids, the index vectors), id lookup tables,
known users' query vectors and training items, the retrieval index (brute force with
stock TF ops, or the tfrs ScaNN layer) and the signatures:

- ``serving_default``: top-K ``item_ids`` [B, K] (external ids) and ``scores`` [B, K]
  for a query: ``user`` [B] (known user ids), or for cold start ``profile``
  [B, P] (item ids, "" pads) and, for content models, ``profile_embeddings``
  [B, P, F] (raw item features, all-zero rows pad), or any model-specific query
  input (`tfvrec.serving.parts.QueryInput`). Send exactly one query input.
  ``exclude`` [B, E] (item ids, "" pads) removes items from the answer; with
  ``export.exclude_seen`` a user's training items (a profile's own items) are
  always removed. Rows with fewer than K eligible items are padded with item id
  "" and score ``PAD_SCORE``.
- ``score``: exact model ``scores`` [B, C] of ``items`` [B, C] for the same query inputs.
- ``embed_items`` (content models): candidate ``embeddings`` [N, d] of new item ``features`` [N, F].
- model-specific signatures from the model's adapter (``explain`` for HASC, ...).

A request is answered by `recommend` → `query` (query vectors and exclusions per
input) → `top_k` (`tfvrec.retrieval`: brute force or ScaNN, one or two stages).
An unknown user or item id, ``k`` out of range, or a malformed query fails the
request with INVALID_ARGUMENT naming the problem (``tf.debugging.Assert`` in the
graph, which is what a TF Serving client sees too).

``scann`` fetches ``max(rerank_candidates, K) + exclusions`` candidates, which are
then re-scored exactly: returned scores are always the model's exact scores. Models
whose index vectors only approximate their score (HASC) re-rank that way under
brute force as well.
"""
import inspect
import math
import time
import zlib

import numpy as np
import tensorflow as tf

from tfvrec import retrieval
from tfvrec.serving.parts import (ExportError, QueryInput, ServingParts, SignatureInput, assert_that,
                                  with_checks)

PAD_SCORE = float(np.finfo(np.float32).min)  # score of padding entries (item id "")


def shard_rows(item_ids, num_shards, shard):
    """Catalogue rows of the items in shard ``shard`` of ``num_shards``: by a stable hash of the id
    (CRC-32), so adding items to the catalogue never moves an item to another shard."""
    if num_shards == 1:
        return np.arange(len(item_ids), dtype=np.int64)
    codes = np.array([zlib.crc32(str(i).encode("utf-8")) % num_shards for i in item_ids], np.int64)
    return np.flatnonzero(codes == shard).astype(np.int64)


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
        if not (c.num_shards >= 1 and 0 <= c.shard < c.num_shards):
            raise ExportError(f"export.shard={c.shard} of export.num_shards={c.num_shards}: need 0 ≤ shard < "
                              "num_shards")
        self.num_shards, self.shard = c.num_shards, c.shard
        index_rows = shard_rows(parts.item_ids, c.num_shards, c.shard)
        if not len(index_rows):
            raise ExportError(f"shard {c.shard} of {c.num_shards} holds no item (catalogue of {self.num_items})")
        self.index_size = len(index_rows)
        self.max_k = min(c.max_k, self.index_size)
        self.default_k = min(c.default_k, self.max_k)
        self.exclude_seen = c.exclude_seen
        self.rerank_candidates = max(1, c.rerank_candidates)
        self.two_stage = parts.exact_user_scores is not None
        self.distance = parts.distance

        item_ids = [str(i) for i in parts.item_ids]
        self.item_ids = tf.Variable(tf.constant(item_ids, tf.string), trainable=False, name="item_ids")
        self.item_vectors = tf.Variable(item_vectors, trainable=False, name="item_vectors")
        self.sharded = c.num_shards > 1
        if self.sharded:  # the index holds the shard's rows; every item stays known (profiles, exact scores)
            position = np.full(self.num_items, -1, np.int64)
            position[index_rows] = np.arange(len(index_rows))
            self.index_rows = tf.Variable(index_rows, trainable=False, name="index_rows")
            self.index_position = tf.Variable(position, trainable=False, name="index_position")
            self.index_vectors = tf.Variable(item_vectors[index_rows], trainable=False, name="index_vectors")
        else:
            self.index_vectors = self.item_vectors
        if self.distance == "squared_l2":
            self.item_sq_norms = tf.Variable(np.sum(item_vectors[index_rows] ** 2, axis=1), trainable=False,
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
            self.scann = self._build_scann(item_vectors[index_rows], c)
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
        n = self.index_size
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
        dots = tf.matmul(queries, self.index_vectors, transpose_b=True)
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
        return with_checks([assert_that(tf.equal(tf.size(unknown), 0), message, unknown)], rows)

    def lookup_items(self, items, what="items", allow_padding=False):
        """Item ids (any shape) → rows; "" is padding (row -1) when ``allow_padding``."""
        rows = self.item_table.lookup(items)
        bad = rows < 0
        if allow_padding:
            bad = tf.logical_and(bad, tf.not_equal(items, ""))
        unknown = tf.boolean_mask(items, bad)
        return with_checks([assert_that(tf.equal(tf.size(unknown), 0),
                                     f"unknown item id(s) in {what}, not in this export catalogue:",
                                     unknown)], rows)

    # -- queries -------------------------------------------------------------------------
    def _query_inputs(self):
        """``[SignatureInput]`` of the query kinds: ``user`` first, then the cold-start ones.

        ``user`` is built in (known users' stored vectors and training items); ``profile``
        and ``profile_embeddings`` come from the adapter's ``profile_query`` /
        ``embed_items``; any further kinds are the adapter's own `QueryInput`s.
        """
        self.query_builders = {}
        kinds = []
        if self.parts.profile_query is not None:
            kinds.append(QueryInput("profile", tf.TensorSpec([None, None], tf.string),
                                    "cold start: item ids [B, P] a user liked; \"\" pads", self._profile_query,
                                    tf.zeros([0, 0], tf.string)))
            if self.parts.embed_items is not None:
                f = self.parts.feature_dim
                kinds.append(QueryInput("profile_embeddings", tf.TensorSpec([None, None, f], tf.float32),
                                        f"cold start from raw item features [B, P, {f}]; all-zero rows pad",
                                        self._profile_embeddings_query, tf.zeros([0, 0, f], tf.float32)))
        kinds += list(self.parts.query_inputs)
        inputs = []
        if self.has_users:
            inputs.append(SignatureInput("user", tf.TensorSpec([None], tf.string), tf.constant([], tf.string),
                                         "user ids [B] (known users)"))
        for kind in kinds:
            if kind.name in self.query_builders or kind.name == "user":
                raise ExportError(f"{self.parts.model_name}: query input {kind.name!r} defined twice")
            default = kind.default if kind.default is not None else tf.zeros(
                [0 if d is None else d for d in kind.spec.shape], kind.spec.dtype)
            inputs.append(SignatureInput(kind.name, kind.spec, default, kind.doc))
            self.query_builders[kind.name] = kind.build
        if not inputs:
            raise ExportError(f"{self.parts.model_name}: the adapter gives no way to form a query")
        return inputs

    def _profile_query(self, module, profile):
        rows = self.lookup_items(profile, "profile", allow_padding=True)
        mask = rows >= 0
        nonempty = tf.reduce_all(tf.reduce_any(mask, axis=1))
        rows = with_checks([assert_that(nonempty, "every profile row needs at least one item id")], rows)
        safe = tf.where(mask, rows, tf.zeros_like(rows))
        return self.parts.profile_query(tf.gather(self.item_vectors, safe), mask), tf.ragged.boolean_mask(safe, mask)

    def _profile_embeddings_query(self, module, features):
        mask = tf.reduce_any(tf.not_equal(features, 0.0), axis=-1)
        nonempty = tf.reduce_all(tf.reduce_any(mask, axis=1))
        finite = tf.reduce_all(tf.math.is_finite(features))
        features = with_checks([
            assert_that(nonempty, "every profile_embeddings row needs at least one non-zero vector"),
            assert_that(finite, "profile_embeddings contains NaN or inf")], features)
        shape = tf.shape(features)
        embedded = self.parts.embed_items(tf.reshape(features, [-1, self.parts.feature_dim]))
        embedded = tf.reshape(embedded, tf.concat([shape[:2], [self.dim]], 0))
        nothing = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros([shape[0]], tf.int64))
        return self.parts.profile_query(embedded, mask), nothing

    def query(self, inputs):
        """Query vectors ``[B, d]``, exclusions (ragged rows) and user rows for a request.

        Exactly one query input may be non-empty; the known-user rows (if any) come first,
        which two-stage models' exact scoring relies on.
        """
        vectors, exclusions, sizes = [], [], []
        user_rows = tf.zeros([0], tf.int64)
        if "user" in inputs:
            user_rows = self.lookup_users(inputs["user"])
            vectors.append(tf.gather(self.user_vectors, user_rows))
            seen = tf.RaggedTensor.from_row_splits(self.seen_values, self.seen_splits, validate=False)
            exclusions.append(tf.gather(seen, user_rows))
            sizes.append(tf.size(inputs["user"]))
        for name, build in self.query_builders.items():
            if name in inputs:
                query_vectors, own = build(self, inputs[name])
                vectors.append(tf.cast(query_vectors, tf.float32))
                exclusions.append(tf.cast(own, tf.int64))
                sizes.append(tf.shape(inputs[name])[0])
        if not self.exclude_seen:
            exclusions = [e[:, :0] for e in exclusions]
        names = " or ".join(i.name for i in self.query_inputs)
        given = tf.add_n([tf.cast(s > 0, tf.int32) for s in sizes])
        check = assert_that(tf.equal(given, 1), f"send exactly one non-empty query input: {names}")
        query_vectors = with_checks([check], tf.concat(vectors, axis=0))
        return {"vectors": query_vectors, "exclusions": tf.concat(exclusions, axis=0), "user_rows": user_rows}

    def _explicit_exclusions(self, exclude, batch):
        """``exclude`` [B, E] item ids → ragged catalogue rows (unknown ids and "" dropped)."""
        n = tf.shape(exclude)[0]
        check = assert_that(tf.logical_or(tf.equal(n, 0), tf.equal(n, batch)),
                            "exclude needs one row per query (or none); rows, queries:", n, batch)
        exclude = with_checks([check], exclude)
        exclude = tf.cond(tf.equal(n, 0), lambda: tf.fill([batch, 0], ""), lambda: exclude)
        rows = self.item_table.lookup(exclude)
        return tf.ragged.boolean_mask(rows, rows >= 0)

    # -- retrieval -----------------------------------------------------------------------
    def top_k(self, query, k, exclude=None):
        """Top-``k`` ``(scores [B, k], rows [B, k])``; excluded or missing entries score -inf."""
        q, exclusions = query["vectors"], query["exclusions"]
        if exclude is not None:
            exclusions = tf.concat([exclusions, self._explicit_exclusions(exclude, tf.shape(q)[0])], axis=1)
        exact = lambda rows: self._exact(query, rows)  # noqa: E731
        if self.index_kind == "brute_force":
            if not self.sharded:
                return retrieval.brute_force_top_k(self._index_scores(q), exclusions, k,
                                                   exact_scores=exact if self.two_stage else None,
                                                   num_candidates=self.rerank_candidates)
            # Index positions of the shard ↔ catalogue rows.
            positions = tf.gather(self.index_position, exclusions.flat_values)
            local = tf.RaggedTensor.from_value_rowids(positions, exclusions.value_rowids(),
                                                      nrows=tf.shape(q, out_type=tf.int64)[0])
            local = tf.ragged.boolean_mask(local, local >= 0)
            scores, found = retrieval.brute_force_top_k(
                self._index_scores(q), local, k, num_candidates=self.rerank_candidates,
                exact_scores=(lambda pos: exact(tf.gather(self.index_rows, pos))) if self.two_stage else None)
            return scores, tf.gather(self.index_rows, found)
        extra = tf.cast(tf.reduce_max(tf.concat([exclusions.row_lengths(), [0]], 0)), tf.int32)
        n = tf.minimum(tf.maximum(self.rerank_candidates, k) + extra, self.index_size)
        _, candidates = self.scann(q, k=n)
        if self.sharded:
            candidates = tf.cast(candidates, tf.int64)
            inside = tf.logical_and(candidates >= 0, candidates < self.index_size)
            candidates = tf.where(inside, tf.gather(self.index_rows, tf.clip_by_value(candidates, 0,
                                                                                        self.index_size - 1)), -1)
        return retrieval.ann_top_k(candidates, exclusions, self.num_items, k, exact)

    def check_k(self, k):
        ok = tf.logical_and(k >= 1, k <= self.max_k)
        message = f"k must be between 1 and max_k={self.max_k} (export.max_k of this export); got k ="
        return with_checks([assert_that(ok, message, k)], k)

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
        rows = with_checks([assert_that(batch_ok, "items needs one row per query; rows, queries:",
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

    # -- what versions.write_version asks of every serving module --------------------------
    def warmup_requests(self):
        """``(signature, inputs)`` pairs replayed at load: one recommendation and one score request."""
        parts = self.parts
        if self.has_users:
            query = {"user": np.array([str(parts.user_ids[0])], object)}
        else:
            query = {"profile": np.array([[str(parts.item_ids[0])]], object)}
        requests = [("serving_default", dict(query)),
                    ("score", dict(query, items=np.array([[str(parts.item_ids[0])]], object)))]
        requests += list(parts.warmup_inputs.items())
        return requests

    def describe(self):
        """What the export holds, for ``assets.extra/tfvrec_export.json``."""
        return {"num_items": self.num_items, "num_users": self.num_users if self.has_users else 0, "dim": self.dim,
                "index": self.index_kind, "distance": self.distance, "two_stage": self.two_stage,
                "shard": self.shard, "num_shards": self.num_shards, "index_size": self.index_size,
                "max_k": self.max_k, "default_k": self.default_k, "exclude_seen": self.exclude_seen,
                "rerank_candidates": self.rerank_candidates, "scann": getattr(self, "scann_settings", None),
                "index_build_seconds": round(self.index_build_seconds, 3), "signatures": self.signature_docs,
                "query_notes": self.parts.notes, "pad_score": PAD_SCORE}

