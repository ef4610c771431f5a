"""Top-K recommendations from a trained run, answered exactly as its export answers: ``tfvrec recommend``.

Python::

    from tfvrec.inference import Recommender
    rec = Recommender("runs/bpr_synthetic")
    rec.recommend("u042", k=10)      # [{"item": "i1337", "score": 3.21}, ...], best first
    rec.score("u042", ["i0001", "i0002"])
    # a new user of a content model (CuratorNet, VBPR, CDL), and new items, without retraining:
    rec.recommend(profile_items=["i0042", "i1337"], new_items={"new_painting": vector}, k=10)

Users and items are the data set's own string ids. There is one read path: the run's model goes
through its export adapter into the serving module ``tfvrec export`` would write
(`tfvrec.serving.export.serving_module`), and the request is answered by that module's
``serving_default`` / ``score`` signature functions — what is scored here is what is served
(brute-force index; HASC's two stages included). A user's training items (a profile's own
items) are never recommended back unless ``exclude_seen=False``.

A new user is a profile of liked items (catalogue ids, or raw content vectors of items outside
it): models whose items are content (their export embeds raw features) rank for one without
retraining; new items, given their content, join the catalogue exactly as ``tfvrec index``
adds them (an id already in the catalogue names the same item with new content).

Command line::

    tfvrec recommend --run DIR --user U [-k 10] [--json]
    tfvrec recommend --run DIR --items ID ... [--embeddings F.npz] [--new-items F]   # cold start
"""
import copy
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from tfvrec import registry
from tfvrec.data import content as content_lib
from tfvrec.data import features as features_lib
from tfvrec.data.dataset import read_table
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.runs import Run
from tfvrec.serving.export import serving_module
from tfvrec.serving.parts import ExportError

_LOADED = {}


class Recommender:
    """A trained run, loaded once, answering top-K and score requests through its serving module."""

    def __init__(self, run_dir, allow_unfinished=None):
        self.run_dir = run_dir
        self.config, self.dataset, self.model = Run(run_dir).load(allow_unfinished=allow_unfinished)
        spec = registry.model_spec(self.config.model.name)
        if spec.evaluation:
            raise ConfigError(f"{run_dir}: model '{spec.name}' does not rank a catalogue of items for users; "
                              f"see its documentation (docs/models/{spec.name}.md) for how it is queried")
        self.item_ids = np.asarray(self.dataset.item_ids).astype(str)
        self.user_ids = np.asarray(self.dataset.user_ids).astype(str)
        self._user_rows = {u: n for n, u in enumerate(self.user_ids)}
        self._catalogue = set(self.item_ids.tolist())
        self._modules = {}

    # -- the serving module -----------------------------------------------------------------
    def module(self, exclude_seen=True, new_items=None):
        """The run's serving module (brute force, K up to the whole catalogue), built once per setting;
        ``new_items`` ``(ids, raw content [n, d])`` join its catalogue as ``tfvrec index`` adds them."""
        key = (bool(exclude_seen), None if new_items is None else hashlib.sha256(
            "\x1f".join(new_items[0]).encode() + np.ascontiguousarray(new_items[1]).tobytes()).hexdigest())
        if key not in self._modules:
            config = copy.deepcopy(self.config)
            extra = 0 if new_items is None else len(new_items[0])
            config.export.index, config.export.exclude_seen = "brute_force", bool(exclude_seen)
            config.export.num_shards, config.export.shard = 1, 0
            config.export.max_k = max(config.export.max_k, self.dataset.num_items + extra)
            try:
                module = serving_module(config, self.dataset, self.model, new_items=new_items)
            except ExportError as e:
                raise DataError("<new items>" if new_items is not None else self.run_dir, str(e)) from None
            if new_items is not None:  # one module per distinct set of new items is kept: the last
                self._modules = {k: v for k, v in self._modules.items() if k[1] is None}
            self._modules[key] = module
        return self._modules[key]

    @property
    def content_dim(self):
        """Dimension of the raw item content the run's export embeds (0: items are learned ids)."""
        parts = getattr(self.module(), "parts", None)
        return int(parts.feature_dim) if parts is not None and parts.embed_items is not None else 0

    def _answer(self, module, k, **query):
        k = int(k)
        out = module.signature_functions["serving_default"](k=tf.constant(k, tf.int32), **query)
        ids = out["item_ids"].numpy()[0].astype(str)
        scores = out["scores"].numpy()[0]
        keep = ids != ""
        return ids[keep], scores[keep].astype(np.float64)

    # -- known users ---------------------------------------------------------------------------
    def _user(self, user):
        if str(user) not in self._user_rows:
            raise DataError(os.path.join(self.dataset.path, "users.tsv"),
                            f"user {str(user)[:100]!r} is not a user of this run's data set (for a new user, give "
                            "liked items: --items)", key=str(user)[:100])
        return str(user)

    def recommend(self, user=None, k=10, exclude_seen=True, profile_items=None, profile_embeddings=None,
                  new_items=None):
        """Top-``k`` ``[{"item", "score"}]``, best first, for a known ``user`` (data set id) — or, for a new
        user, for ``profile_items`` (ids of liked items, from the catalogue or ``new_items``) and/or
        ``profile_embeddings`` (raw content ``[n, d]`` of further liked items). ``new_items``: ``{id: content}``
        or ``(ids, content [m, d])``, ranked with the catalogue; entries then say ``"new": true/false``."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise DataError("<k>", f"k must be a positive integer, got {k!r}")
        extra = self._new_items(new_items)
        module = self.module(exclude_seen, extra)
        if user is not None:
            if profile_items is not None or profile_embeddings is not None:
                raise DataError("<query>", "give a known user or a profile of a new user, not both")
            ids, scores = self._answer(module, min(k, module.max_k), user=tf.constant([self._user(user)]))
        else:
            ids, scores = self._cold_start(module, k, profile_items, profile_embeddings)
        results = [{"item": str(i), "score": float(s)} for i, s in zip(ids, scores)]
        if extra is not None:  # (a new item that reuses a catalogue id is that item, with new content)
            for r in results:
                r["new"] = r["item"] not in self._catalogue
        return results

    def _cold_start(self, module, k, profile_items, profile_embeddings, source="<profile>"):
        parts = getattr(module, "parts", None)
        if parts is None or parts.embed_items is None:
            raise ConfigError(f"{self.run_dir}: model '{self.config.model.name}' has per-user parameters and items "
                              "that are learned ids, not content, so a new user has no vector; give --user (a user "
                              "of the run) or use a content model such as curatornet")
        if profile_items and profile_embeddings is not None:
            raise DataError(source, "give the new user's liked items as catalogue ids or as content vectors, not both "
                                    "(a served query is one or the other)")
        if profile_embeddings is not None:
            vectors = self._check_content(profile_embeddings, source + " embeddings")
            return self._answer(module, min(k, module.max_k),
                                profile_embeddings=tf.constant(vectors[None], tf.float32))
        items = [str(i) for i in (profile_items or [])]
        if not items:
            raise DataError(source, "empty profile: give at least one liked item id or content vector")
        known = set(str(i) for i in parts.item_ids)
        for item in items:
            if item not in known:
                raise DataError(source, f"item {item!r} is neither in the run's catalogue ({len(self.item_ids)} "
                                        f"items, {self.dataset.path}/items.tsv) nor among the new items", key=item)
        return self._answer(module, min(k, module.max_k), profile=tf.constant([items]))

    def _check_content(self, vectors, source):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[np.newaxis]
        dim = self.content_dim
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise DataError(source, f"expected content vectors of dimension {dim} (the model's "
                                    f"{getattr(self.model, 'description', '') or 'item content'}), got shape "
                                    f"{vectors.shape}")
        if not np.isfinite(vectors).all():
            raise DataError(source, "content vectors contain NaN or inf")
        return vectors

    def _new_items(self, new_items):
        if new_items is None:
            return None
        if isinstance(new_items, dict):
            ids, vectors = list(new_items.keys()), list(new_items.values())
        else:
            ids, vectors = new_items
        ids = [str(i) for i in ids]
        if not ids:
            return None
        if len(set(ids)) != len(ids):
            raise DataError("<new items>", "new item ids must be unique")
        return ids, self._check_content(np.stack([np.asarray(v, np.float32) for v in vectors]), "<new items>")

    def score(self, user, items):
        """The model's scores (as served) of catalogue ``items`` (ids) for a known ``user``."""
        self.dataset.item_index([str(i) for i in items], path="<items>")
        out = self.module().signature_functions["score"](items=tf.constant([[str(i) for i in items]]),
                                                         user=tf.constant([self._user(user)]))
        return [float(s) for s in out["scores"].numpy()[0]]


def recommender(run_dir):
    """The loaded `Recommender` of ``run_dir`` (loaded once per process)."""
    key = os.path.abspath(run_dir)
    if key not in _LOADED:
        _LOADED[key] = Recommender(run_dir)
    return _LOADED[key]


def _read_new_items(path, rec):
    """``(ids, content)`` from a feature file, or an item/artist table for artist one-hot models."""
    if path.endswith(".npz"):
        ids, vectors = features_lib.load_features(path)
        return list(ids), vectors
    frame, first = read_table(path, ("item", "artist"))
    artists = list(frame["artist"])
    known = {a: n for n, a in enumerate(np.asarray(rec.dataset.artist_ids).astype(str))}
    for row, artist in enumerate(artists):
        if str(artist) not in known:
            raise DataError(path, f"artist {str(artist)!r} is not an artist of the training catalogue ({len(known)} "
                                  "artists); the one-hot content cannot represent it", line=row + first,
                            key=str(artist))
    return list(frame["item"]), content_lib.artist_onehot(rec.dataset, artists)


def run_cli(args):
    """``tfvrec recommend`` (its arguments: `tfvrec.cli`)."""
    if (args.user is None) == (args.items is None and args.embeddings is None):
        raise ConfigError("tfvrec recommend: give --user (a user of the run), or --items / --embeddings for a "
                          "new user (cold start), not both")
    rec = recommender(args.run)
    if args.user is not None:
        results = rec.recommend(args.user, k=args.k)
        heading = f"Top {len(results)} of run {args.run} for user {args.user} (training items excluded)"
    else:
        items = [i for chunk in (args.items or []) for i in chunk.split(",") if i]
        embeddings = features_lib.load_features(args.embeddings)[1] if args.embeddings else None
        extra = _read_new_items(args.new_items, rec) if args.new_items else None
        results = rec.recommend(profile_items=items or None, profile_embeddings=embeddings, k=args.k,
                                new_items=extra, exclude_seen=not args.include_profile)
        heading = (f"Top {len(results)} of run {args.run} for a profile of {len(items)} item(s)"
                   f"{f' + {len(embeddings)} embedding(s)' if embeddings is not None else ''}"
                   f"{f'; {len(extra[0])} new item(s) in the index' if extra else ''}")
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(heading)
    width = max([4] + [len(r["item"]) for r in results])
    print(f"{'rank':>4}  {'item':<{width}}  {'score':>10}")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>4}  {r['item']:<{width}}  {r['score']:>10.4f}{'  (new)' if r.get('new') else ''}")
