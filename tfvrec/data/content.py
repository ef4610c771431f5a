"""Item content as matrices: what an item *is*, apart from who interacted with it.

A new item arrives with its content, never with interactions, so the content is all a
recommender can know about it. Two kinds, each a matrix with one row per item (aligned
with ``dataset.item_ids``):

- **metadata** (`metadata_matrix`): a one-hot (multi-hot for tags) sparse matrix of an
  ``items.tsv`` column: ``tags`` (the posters' genres), ``artist`` (UGallery's artist) or
  ``creator`` (Flickr's uploader). ``kind="auto"`` takes the first of these any item has.
- **visual features** (`feature_matrix`): the data set's feature set ``data.features``
  (``features/<name>.npz``, e.g. EfficientNet-Lite0 vectors from ``tfvrec features``).

`l2_normalize` turns either into unit rows, so a dot product is a cosine similarity.
An item without the content (no tag, no artist) has a zero row: similar to nothing.

`item_content` is the content vector a content model (CuratorNet, VBPR, VisRank) reads an item by
(``model.<name>.item_content``): one part, or several joined by ``+`` and concatenated in that order:

- ``features`` — the visual feature set ``data.features``;
- ``tags`` — the multi-hot vector of the item's ``items.tsv`` tags (posters: its genres);
- ``artist_onehot`` — the one-hot vector of the item's artist (UGallery).

E.g. ``features+tags`` is ``[f_i ‖ genres_i]``. A new item (``tfvrec index``, ``Recommender(new_items=)``)
arrives with the same vector: its parts in the same order and columns (`content_columns` names them).
"""
import numpy as np
import scipy.sparse as sp

from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError

ITEM_CONTENT = ("features", "tags", "artist_onehot")  # the parts of a content model's `item_content`
METADATA_KINDS = ("tags", "artist", "creator")  # in the order kind="auto" tries them
DESCRIPTIONS = {"tags": "items.tsv tags (posters: genres)", "artist": "the item's artist",
                "creator": "the item's creator (uploader)"}


def metadata_kind(dataset, kind="auto"):
    """``kind``, or for ``"auto"`` the first of `METADATA_KINDS` some item has; `DataError` when none."""
    if kind not in ("auto",) + METADATA_KINDS:
        raise ValueError(f"unknown metadata kind {kind!r}; expected 'auto' or one of {METADATA_KINDS}")
    has = {"tags": any(len(t) for t in dataset.item_tags), "artist": bool((dataset.item_artist >= 0).any()),
           "creator": bool((dataset.item_creator >= 0).any())}
    if kind == "auto":
        for candidate in METADATA_KINDS:
            if has[candidate]:
                return candidate
        raise DataError(dataset.path + "/items.tsv", "no item has metadata (tags, artist or creator column): "
                                                     "nothing for a metadata model to compare items by")
    if not has[kind]:
        raise DataError(dataset.path + "/items.tsv", f"no item has a {kind!r} value")
    return kind


def metadata_columns(dataset, kind="auto"):
    """The value (tag, artist id or creator user id) of each column of `metadata_matrix`."""
    kind = metadata_kind(dataset, kind)
    if kind == "tags":
        return np.array(sorted({t for tags in dataset.item_tags for t in tags}), dtype=object)
    if kind == "artist":
        return np.asarray(dataset.artist_ids, dtype=object)
    return np.asarray(dataset.user_ids, dtype=object)


def metadata_matrix(dataset, kind="auto"):
    """``scipy.sparse.csr_matrix`` float32 ``[num_items, len(metadata_columns)]``: 1 where the item has the
    value (a tag, its artist, its creator), else 0."""
    kind = metadata_kind(dataset, kind)
    if kind == "tags":
        columns = metadata_columns(dataset, kind)
        position = {t: n for n, t in enumerate(columns)}
        rows = np.repeat(np.arange(dataset.num_items), [len(t) for t in dataset.item_tags])
        cols = np.array([position[t] for tags in dataset.item_tags for t in tags], dtype=np.int64)
        width = len(columns)
    else:
        codes = dataset.item_artist if kind == "artist" else dataset.item_creator
        rows = np.flatnonzero(codes >= 0)
        cols = codes[rows]
        width = len(dataset.artist_ids) if kind == "artist" else dataset.num_users
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(dataset.num_items, width))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # (a tag listed twice on an item is one tag)
    return matrix


def feature_matrix(dataset, name):
    """Dense float32 ``[num_items, d]``: feature set ``name`` of the data set (every item needs a vector)."""
    if not name:
        raise DataError(dataset.path + "/features", "no feature set named (data.features is empty): visual "
                                                    f"content needs one of {dataset.feature_names() or 'none here'}")
    return np.asarray(dataset.features(name), dtype=np.float32)


def l2_normalize(matrix):
    """Rows scaled to unit L2 norm (zero rows stay zero); dense stays dense, sparse stays CSR."""
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix)
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def content_parts(spec, key="item_content"):
    """The parts of an ``item_content`` value: ``"features+tags"`` → ``("features", "tags")``; `ConfigError`
    for an unknown, repeated or missing part."""
    parts = tuple(p.strip() for p in str(spec).split("+"))
    unknown = [p for p in parts if p not in ITEM_CONTENT]
    if unknown or len(set(parts)) != len(parts):
        raise ConfigError(f"{key} must be one of {list(ITEM_CONTENT)} or several of them joined by '+' (each at most "
                          f"once, e.g. 'features+tags'), got {spec!r}")
    return parts


def _part(dataset, part, features_name, key):
    """``(matrix float32 [num_items, d], description)`` of one content part."""
    if part == "artist_onehot":
        missing = int((dataset.item_artist < 0).sum())
        return (metadata_matrix(dataset, "artist").toarray(),
                f"artist one-hot content ({len(dataset.artist_ids)} artists, {missing} items without one)")
    if part == "tags":
        matrix = metadata_matrix(dataset, "tags")
        missing = int((np.diff(matrix.indptr) == 0).sum())
        return matrix.toarray(), (f"tags multi-hot ({DESCRIPTIONS['tags']}; {matrix.shape[1]} tags, {missing} items "
                                  "without one)")
    if not features_name:
        raise ConfigError(f"{key} uses 'features' but data.features is empty; name a feature set of the data set "
                          "(features/<name>.npz) or use metadata content (tags, artist_onehot)")
    matrix = feature_matrix(dataset, features_name)
    return matrix, f"visual features '{features_name}' ({matrix.shape[1]}-d)"


def item_content(dataset, kind, features_name, key="item_content"):
    """``(content float32 [num_items, d], description)`` of a content model.

    ``kind``: a part or parts joined by ``+`` (`content_parts`): ``features`` — feature set ``features_name``
    (frozen CNN embeddings, e.g. CuratorNet's ResNet50 vectors); ``tags`` — the multi-hot vector of the item's
    tags (posters: genres); ``artist_onehot`` — the one-hot vector of the item's artist, for data sets without
    image embeddings (UGallery's public part). Several parts are concatenated in the order given. ``key``
    names the config key in errors."""
    parts = content_parts(kind, key)
    matrices, said = zip(*(_part(dataset, part, features_name, key) for part in parts))
    content = np.concatenate([np.asarray(m, np.float32) for m in matrices], axis=1)
    if len(parts) == 1:
        description = f"items use {said[0]}"
    else:
        description = (f"items use {' + '.join(said)}, concatenated ({content.shape[1]}-d; a new item's content "
                       "is the same concatenation)")
    if "features" not in parts:
        description += "; no image embeddings"
    return content, description


def part_sizes(dataset, kind, features_name, key="item_content"):
    """The width of each part of `item_content` ``kind``, in order (``features+tags`` on the posters:
    ``[1280, 19]``)."""
    return [_part(dataset, part, features_name, key)[0].shape[1] for part in content_parts(kind, key)]


def content_columns(dataset, kind, features_name, key="item_content"):
    """Name of each column of `item_content` (``features:0`` …, ``tag:Comedy`` …, ``artist:a12`` …): how a new
    item's content vector is laid out."""
    names = []
    for part in content_parts(kind, key):
        if part == "features":
            names += [f"features:{n}" for n in range(feature_matrix(dataset, features_name).shape[1])]
        elif part == "tags":
            names += [f"tag:{t}" for t in metadata_columns(dataset, "tags")]
        else:
            names += [f"artist:{a}" for a in metadata_columns(dataset, "artist")]
    return names


def artist_onehot(dataset, artists):
    """The ``artist_onehot`` content ``[n, len(artist_ids)]`` of items by these (known) artists: new items of an
    artist one-hot model (`item_content`)."""
    position = {a: n for n, a in enumerate(np.asarray(dataset.artist_ids).astype(str))}
    content = np.zeros((len(artists), len(position)), dtype=np.float32)
    for row, artist in enumerate(artists):
        content[row, position[str(artist)]] = 1.0
    return content
