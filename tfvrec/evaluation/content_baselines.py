"""Content baselines a practitioner tries first for new items: item-based k-NN on content, no learning.

``metadata_knn``
    Items compared by their metadata (`tfvrec.data.content.metadata_matrix`, kind ``auto``:
    the posters' genres — the ``tags`` column — else UGallery's artist, else the creator).
``visual_knn``
    Items compared by their visual features ``data.features`` (e.g. EfficientNet-Lite0 vectors).

Both are `ItemKNNScorer`: the content rows L2-normalised, and

    score(u, i) = Σ cos(i, h) over the user's ``k`` training items h most similar to i

(``eval.metadata_knn_k`` / ``eval.visual_knn_k``; 0 means every training item of the user, which
ranks like the cosine between i and the user's profile — the sum of their unit content vectors —
the "genre profile").
They score an item nobody has interacted with from its content alone, so under the
``new_items`` protocol they show what content by itself is worth; popularity and random are
the floor there. Registered like the engine's popularity and random (``eval.baselines``).
"""
import numpy as np
import scipy.sparse as sp

from tfvrec import registry
from tfvrec.data import content as content_lib
from tfvrec.errors import ConfigError

_DENSE_CELLS = 1 << 24  # a sparse metadata matrix at most this large is used dense (faster products)


class ItemKNNScorer:
    """Item-based k-NN on item content over each user's training history (a `FullScorer`)."""

    def __init__(self, content, history, k=0, evaluation_note=""):
        """``content``: ``[num_items, d]`` (dense or scipy sparse), normalised here; ``history``: per user
        index, the item indices of the user's training interactions; ``k`` ≥ 0 (0: all of them)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"k must be an integer ≥ 0 (0: every history item), got {k!r}")
        matrix = content_lib.l2_normalize(content)
        if sp.issparse(matrix) and matrix.shape[0] * matrix.shape[1] <= _DENSE_CELLS:
            matrix = matrix.toarray()
        self.content = matrix
        self.num_items = matrix.shape[0]
        self.history = [np.asarray(h, dtype=np.int64) for h in history]
        self.k = int(k)
        self.evaluation_note = evaluation_note

    def _scores(self, user, items):
        """Scores of ``items`` (None: every item) for one user."""
        history = self.history[user] if user < len(self.history) else np.empty(0, np.int64)
        target = self.content if items is None else self.content[items]
        count = self.num_items if items is None else len(items)
        if not len(history):
            return np.zeros(count, dtype=np.float64)
        liked = self.content[history]
        if self.k == 0 or len(history) <= self.k:
            # The sum over every history item is one product with the user's profile.
            profile = np.asarray(liked.sum(axis=0)).ravel()
            return np.asarray(target @ profile, dtype=np.float64).ravel()
        similarities = target @ liked.T
        similarities = similarities.toarray() if sp.issparse(similarities) else np.asarray(similarities)
        top = np.partition(similarities, len(history) - self.k, axis=1)[:, len(history) - self.k:]
        return top.sum(axis=1, dtype=np.float64)

    def score(self, users, items):
        items = np.asarray(items, dtype=np.int64)
        return np.stack([self._scores(int(u), row) for u, row in zip(users, items)]) if len(items) else \
            np.zeros(items.shape)

    def score_all(self, users):
        return np.stack([self._scores(int(u), None) for u in users]) if len(users) else \
            np.zeros((0, self.num_items))


def _describe_k(k):
    return "all history items (the profile direction)" if k == 0 else f"the {k} most similar history items"


@registry.register_baseline("metadata_knn")
def _metadata_knn(dataset, config, heldout):
    kind, k = content_lib.metadata_kind(dataset, "auto"), config.eval.metadata_knn_k
    note = (f"metadata_knn: content k-NN on item metadata — {content_lib.DESCRIPTIONS[kind]}; cosine, sum over "
            f"{_describe_k(k)}; no learning")
    return ItemKNNScorer(content_lib.metadata_matrix(dataset, kind), dataset.train_items_by_user(), k, note)


@registry.register_baseline("visual_knn")
def _visual_knn(dataset, config, heldout):
    if not config.data.features:
        raise ConfigError("eval.baselines lists visual_knn, which compares items by their visual features, but "
                          "data.features is empty; name a feature set of the data set")
    k = config.eval.visual_knn_k
    note = (f"visual_knn: content k-NN on visual features '{config.data.features}' (L2-normalised); cosine, sum "
            f"over {_describe_k(k)}; no learning")
    return ItemKNNScorer(content_lib.feature_matrix(dataset, config.data.features), dataset.train_items_by_user(),
                         k, note)
