"""The adapter contract: what a model puts into its serving SavedModel.

Each model package has a ``serving.py`` whose ``build(config, dataset, model,
new_items=None, replace_items=False)`` returns `ServingParts` (registered as the
model's ``ModelSpec.serving``). The parts give the catalogue (item ids and the vectors
the retrieval index holds), the query vector of every known user, the other kinds of
query a request may send (`QueryInput`), how a cold-start profile of item vectors
becomes a query, how raw item features become item vectors (content models), an
exact re-scoring function (two-stage models) and model-specific signatures.
Everything else — id tables, index, exclusions, K, signatures — is
`tfvrec.serving.module.ServingModule`; atomic versions are `tfvrec.serving.versions`.

``new_items`` is ``(item_ids, features)`` from ``tfvrec index --items``: content
models embed them with their item tower and add them to the catalogue — an id that
is already in the catalogue names the same item, so its vector is replaced
(`tfvrec.catalogue.merge_catalogue`, the rule cold-start recommendation applies too;
``replace_items`` makes the new items the whole catalogue). Id-embedding models refuse (`no_new_items`).

A model whose export is not retrieval (a tag recommender) returns its own
``tf.Module`` instead, with ``signature_functions``, ``signature_docs``,
``index_kind = "none"``, ``warmup_requests()`` and ``describe()``.

The graph-side checks (`assert_that`, `with_checks`, `checked_range`) are here so
adapters and the module fail requests the same way: INVALID_ARGUMENT with a message
naming the problem, which is what a TF Serving client sees.
"""
import dataclasses
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfvrec.errors import QUOTE_LIMIT


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why and what to do."""


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
class QueryInput:
    """A kind of query ``serving_default`` and ``score`` accept besides the built-in ones.

    ``build(module, tensor)`` returns ``(query vectors float32 [B, d], exclusions)``:
    the exclusions are a ragged int64 ``[B, (E)]`` of catalogue rows never returned for
    that query (e.g. a profile's own items; applied when ``export.exclude_seen``).
    ``default`` is the "not sent" value (an empty batch of the spec's shape).
    """
    name: str
    spec: tf.TensorSpec
    doc: str
    build: Callable
    default: Optional[tf.Tensor] = None


@dataclasses.dataclass
class ServingParts:
    """What one model puts into its serving SavedModel (built by its adapter).

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
    query_inputs: List[QueryInput] = dataclasses.field(default_factory=list)  # model-specific query kinds
    trackables: Dict[str, object] = dataclasses.field(default_factory=dict)  # saved with the module
    extra_signatures: Dict[str, ExtraSignature] = dataclasses.field(default_factory=dict)
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)  # query kind -> how it is computed
    warmup_inputs: Dict[str, dict] = dataclasses.field(default_factory=dict)  # extra signature -> inputs


# ----------------------------------------------------------------------------- graph-side checks

def assert_that(condition, message, *data):
    """An InvalidArgument error with ``message`` (and ``data``) when ``condition`` is false.

    The data come back bounded: at most 8 values, strings cut to `tfvrec.errors.QUOTE_LIMIT` bytes. A
    request's own values go into the message, and TensorFlow keeps the message of a signature call
    that fails: fifteen unknown 1 MiB ids grew the server by 8 MB a request (issue 30)."""
    data = [tf.strings.substr(d, 0, QUOTE_LIMIT) if d.dtype == tf.string else d
            for d in (tf.convert_to_tensor(d) for d in data)]
    return tf.debugging.Assert(condition, [message, *data], summarize=8)


def with_checks(checks, tensor):
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def checked_range(value, low, high, what):
    """``value`` (a scalar request input), failing the request unless ``low ≤ value ≤ high``."""
    ok = tf.logical_and(value >= low, value <= high)
    return with_checks([assert_that(ok, f"{what} must be between {low} and {high}; got {what} =", value)], value)


# ----------------------------------------------------------------------------- adapter helpers

def batched(fn, n, batch=65536):
    """``fn(tf.range(lo, hi))`` over ``[0, n)`` in batches, concatenated as float32 numpy."""
    out = [np.asarray(fn(tf.range(lo, min(n, lo + batch), dtype=tf.int64)), np.float32)
           for lo in range(0, n, batch)]
    return np.concatenate(out, axis=0)


def no_new_items(model_name, new_items):
    """Refuse ``tfvrec index`` for models whose items are learned id embeddings."""
    if new_items is not None:
        raise ExportError(f"{model_name} represents items by learned id embeddings, so items it was not trained "
                          "on have no vector: retrain to add items (content models such as curatornet can "
                          "index new items from their features)")


def masked_mean(vectors, mask):
    weights = tf.cast(mask, vectors.dtype)[..., tf.newaxis]
    return tf.reduce_sum(vectors * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
