"""Sharded retrieval: a catalogue split over S exports, a query fanned out, the top-K merged.

``tfvrec export --shards S`` writes S models ``<name>-0 … <name>-(S-1)``; shard s indexes the
items whose id hashes to s (`tfvrec.serving.module.shard_rows`) and, like the unsharded
export, answers with the model's exact scores. Each shard's answer is its top K among its
items, so the merged top K of all shards is the top K of the whole catalogue — exactly,
for brute force; with ScaNN shards it is as good as each shard's own search.

Library: `merge_top_k` over any shard answers; `ShardedClient` fans a request out to
callables (in-process `ExportedModel`s, or TF Serving over gRPC with `grpc_shards`) in
parallel threads and merges. Command line: ``tfvrec query --target HOST:PORT --model NAME
--shards S --user U -k 10`` (a TF Serving or ``tfvrec serve`` server holding the shards).
"""
import concurrent.futures

import numpy as np

from tfvrec.serving.module import PAD_SCORE
from tfvrec.serving.client import ExportedModel


def merge_top_k(answers, k):
    """``answers``: per shard ``{"item_ids": [B, K_s], "scores": [B, K_s]}`` → the merged top ``k``
    ``{"item_ids": [B, k], "scores": [B, k]}`` (ties by shard order; padding stays last)."""
    ids = np.concatenate([np.asarray(a["item_ids"], dtype=object) for a in answers], axis=1)
    scores = np.concatenate([np.asarray(a["scores"], np.float32) for a in answers], axis=1)
    scores = np.where(ids == "", np.float32(PAD_SCORE), scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {"item_ids": np.take_along_axis(ids, order, 1), "scores": np.take_along_axis(scores, order, 1)}


class ShardedClient:
    """Calls every shard with the same request (in parallel) and merges their top-K."""

    def __init__(self, shards, max_workers=None):
        self.shards = list(shards)  # callables: request dict -> {"item_ids", "scores"}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers or len(self.shards))

    def recommend(self, k=10, **query):
        answers = list(self._pool.map(lambda shard: shard(dict(query, k=k)), self.shards))
        return merge_top_k(answers, k)


def local_shards(paths):
    """In-process shards: `tfvrec.serving.client.ExportedModel` of each export path."""
    models = [ExportedModel(p) for p in paths]
    return [lambda request, m=m: m.recommend(**request) for m in models]


def grpc_shards(target, names, timeout=30.0):
    """Shards served by TF Serving (or ``tfvrec serve``) at ``target``: one model name each."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))

    def call(name, request):
        message = predict_pb2.PredictRequest()
        message.model_spec.name = name
        for key, value in request.items():
            value = np.asarray(value, dtype=object if key in ("user", "profile", "exclude") else None)
            message.inputs[key].CopyFrom(tf.make_tensor_proto(value.astype(np.int32) if key == "k" else value))
        response = stub.Predict(message, timeout=timeout)
        ids = tf.make_ndarray(response.outputs["item_ids"]).astype(object)
        return {"item_ids": np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(ids),
                "scores": tf.make_ndarray(response.outputs["scores"])}
    return [lambda request, n=n: call(n, request) for n in names]
