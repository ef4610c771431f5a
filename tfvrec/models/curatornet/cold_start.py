"""Cold-start recommendation from a trained content model: ``tfvrec recommend`` and its Python API.

CuratorNet (Cartagena et al., §3) has no per-user or per-item parameters: a user *is*
a profile of items and an item *is* its content vector. So a trained run recommends

* to a brand-new user, given the items they like (catalogue ids) or the raw content
  vectors of those items (e.g. image embeddings of their uploads), and
* new items, given their content vectors, which join the candidates at inference
  time, ranked exactly like the catalogue — no retraining. A new item that reuses a
  catalogue id is that item with new content: it replaces the catalogue's vector
  (`tfvrec.catalogue.merge_catalogue`, the rule ``tfvrec index`` applies too).

Python::

    from tfvrec.models.curatornet.cold_start import recommend
    recommend("runs/curatornet_synthetic", profile_items=["i0042", "i1337"], k=10,
              extra_items={"new_painting": vector})       # -> [{"item", "score", "new"}, ...]

Command line (the ``recommend`` verb of `tfvrec.inference`)::

    tfvrec recommend --run runs/curatornet_synthetic --items i0042 i1337 -k 10
    tfvrec recommend --run DIR --embeddings profile.npz --new-items new_items.npz --json

``--embeddings`` / ``--new-items`` are feature files (``item`` ids + ``features``
``[n, d]``, `tfvrec.data.features`); for a model whose content is the artist
one-hot vector, ``--new-items`` may instead be a table with columns ``item`` and
``artist`` (an artist of the training catalogue).
"""
import json
import os

import numpy as np

from tfvrec.catalogue import merge_catalogue
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.runs import Run

_LOADED = {}


class ColdStartRecommender:
    """A trained content model, loaded once, that ranks for any profile and any extra items."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.config, self.dataset, self.model = Run(run_dir).load()
        if not hasattr(self.model, "encode_profiles"):
            raise ConfigError(f"{run_dir}: model '{self.config.model.name}' has per-user parameters; cold-start "
                              "recommendation needs a content model such as curatornet")
        self.item_ids = np.asarray(self.dataset.item_ids).astype(str)
        self._catalogue = None
        self.content_dim = self.model.content_dim

    # -- content --------------------------------------------------------------------------
    def content_for_artists(self, artists, source="<artists>"):
        """One-hot content of items by these (known) artists, for artist one-hot models."""
        if self.config.model.curatornet.item_content != "artist_onehot":
            raise DataError(source, "artist content only applies to models with item_content: artist_onehot; "
                                    "give feature vectors instead")
        index = {a: n for n, a in enumerate(np.asarray(self.dataset.artist_ids).astype(str))}
        content = np.zeros((len(artists), len(index)), dtype=np.float32)
        for row, artist in enumerate(artists):
            if str(artist) not in index:
                raise DataError(source, f"artist {str(artist)!r} is not an artist of the training catalogue "
                                        f"({len(index)} artists); the one-hot content cannot represent it",
                                line=None, key=str(artist))
            content[row, index[str(artist)]] = 1.0
        return content

    def _check_content(self, vectors, source):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[np.newaxis]
        if vectors.ndim != 2 or vectors.shape[1] != self.content_dim:
            raise DataError(source, f"expected content vectors of dimension {self.content_dim} (the model's "
                                    f"{self.model.description or 'item content'}), got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise DataError(source, "content vectors contain NaN or inf")
        return vectors

    def _catalogue_vectors(self):
        if self._catalogue is None:
            self._catalogue = self.model.item_vectors().numpy()
        return self._catalogue

    def _encode(self, content):
        import tensorflow as tf
        return self.model.item_model(tf.constant(content)).numpy()

    def _profile_vector(self, item_vectors):
        import tensorflow as tf
        ragged = tf.RaggedTensor.from_row_lengths(tf.constant(item_vectors), [len(item_vectors)])
        return self.model.profile_model(ragged).numpy()[0]

    # -- recommendation -----------------------------------------------------------------------
    def recommend(self, profile_items=None, profile_embeddings=None, k=10, extra_items=None,
                  exclude_profile=True, source="<profile>"):
        """Top-``k`` items for a new user.

        ``profile_items``: ids of items the user likes, from the catalogue or from
        ``extra_items``. ``profile_embeddings``: content vectors ``[n, d]`` of further
        liked items outside both. ``extra_items``: new items, ``{id: vector}`` or
        ``(ids, vectors [m, d])``, ranked with the catalogue. Profile items are not
        recommended back unless ``exclude_profile=False``. Returns
        ``[{"item": id, "score": float, "new": bool}]``, best first.
        """
        extra_ids, extra_content = self._extra(extra_items)
        catalogue = self._catalogue_vectors()
        extra_vectors = self._encode(extra_content) if len(extra_ids) else np.zeros((0, catalogue.shape[1]),
                                                                                     np.float32)
        ids, vectors, _ = merge_catalogue(self.item_ids, catalogue, extra_ids, extra_vectors, source="<new items>")
        index = {item: row for row, item in enumerate(ids)}
        profile_vectors, seen = [], set()
        for item in [str(i) for i in (profile_items or [])]:
            if item not in index:
                raise DataError(source, f"item {item!r} is neither in the run's catalogue ({len(self.item_ids)} "
                                        f"items, {self.dataset.path}/items.tsv) nor among the new items",
                                key=item)
            profile_vectors.append(vectors[index[item]])
            seen.add(item)
        if profile_embeddings is not None:
            profile_vectors.extend(self._encode(self._check_content(profile_embeddings, source + " embeddings")))
        if not profile_vectors:
            raise DataError(source, "empty profile: give at least one liked item id or content vector")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(source, f"k must be a positive integer, got {k!r}")
        user = self._profile_vector(np.stack(profile_vectors))
        scores = vectors @ user
        if exclude_profile and seen:
            scores[np.isin(ids, list(seen))] = -np.inf
        k = min(int(k), int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")][:k]
        return [{"item": str(ids[n]), "score": float(scores[n]), "new": bool(n >= len(self.item_ids))}
                for n in top]

    def _extra(self, extra_items):
        if extra_items is None:
            return [], None
        if isinstance(extra_items, dict):
            ids, vectors = list(extra_items.keys()), list(extra_items.values())
        else:
            ids, vectors = extra_items
        ids = [str(i) for i in ids]
        if not ids:
            return [], None
        return ids, self._check_content(np.stack([np.asarray(v, np.float32) for v in vectors]), "<new items>")


def recommender(run_dir):
    """The loaded `ColdStartRecommender` of ``run_dir`` (loaded once per process)."""
    key = os.path.abspath(run_dir)
    if key not in _LOADED:
        _LOADED[key] = ColdStartRecommender(run_dir)
    return _LOADED[key]


def recommend(run_dir, profile_items=None, k=10, extra_items=None, profile_embeddings=None, exclude_profile=True):
    """Top-``k`` recommendations of run ``run_dir`` for a new user (see `ColdStartRecommender.recommend`)."""
    return recommender(run_dir).recommend(profile_items=profile_items, profile_embeddings=profile_embeddings, k=k,
                                          extra_items=extra_items, exclude_profile=exclude_profile)


# ----------------------------------------------------------------------------- command line

def _read_new_items(path, rec):
    """``(ids, content)`` from a feature file, or an item/artist table for artist one-hot models."""
    if path.endswith(".npz"):
        from tfvrec.data import features as features_lib
        ids, vectors = features_lib.load_features(path)
        return list(ids), rec._check_content(vectors, path)
    from tfvrec.data.dataset import read_table
    frame, _ = read_table(path, ("item", "artist"))
    return list(frame["item"]), rec.content_for_artists(list(frame["artist"]), source=path)


def run_cli(args):
    """``tfvrec recommend --items / --embeddings`` for a CuratorNet run (`tfvrec.inference`)."""
    from tfvrec.data import features as features_lib
    rec = recommender(args.run)
    items = [i for chunk in (args.items or []) for i in chunk.split(",") if i]
    embeddings = features_lib.load_features(args.embeddings)[1] if args.embeddings else None
    extra = _read_new_items(args.new_items, rec) if args.new_items else None
    results = rec.recommend(profile_items=items, profile_embeddings=embeddings, k=args.k, extra_items=extra,
                            exclude_profile=not args.include_profile, source="--items")
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"Top {len(results)} of run {args.run} for a profile of {len(items)} item(s)"
          f"{f' + {len(embeddings)} embedding(s)' if embeddings is not None else ''}"
          f"{f'; {len(extra[0])} new item(s) in the index' if extra else ''}")
    width = max([4] + [len(r["item"]) for r in results])
    print(f"{'rank':>4}  {'item':<{width}}  {'score':>10}")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>4}  {r['item']:<{width}}  {r['score']:>10.4f}{'  (new)' if r['new'] else ''}")
