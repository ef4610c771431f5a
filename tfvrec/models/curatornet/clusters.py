"""CuratorNet's visual clusters (Cartagena et al., §3.5): PCA of the item embeddings to 200
dimensions, k-means with k = 100 run 20 times, the run with the best silhouette kept."""
import numpy as np
from absl import logging

from tfvrec import progress


def visual_clusters(vectors, dims=200, num_clusters=100, restarts=20, seed=0, silhouette_sample=0):
    """Cluster items by their embeddings: PCA → ``dims``, k-means, best silhouette of ``restarts`` runs.

    Returns ``(labels int64 [n], info)`` with ``info`` holding the silhouette of every
    run and the one kept. ``silhouette_sample > 0`` scores each run on that many
    random items (the same ones for every run) instead of all of them.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    vectors = np.asarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if n < 3:
        raise ValueError(f"visual clusters need at least 3 items, got {n}")
    k = int(min(num_clusters, n - 1))
    dims = int(min(dims, d, n))
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(vectors) if dims < d else vectors
    rows = np.arange(n)
    if 0 < silhouette_sample < n:
        rows = np.sort(np.random.default_rng([seed, 7]).choice(n, silhouette_sample, replace=False))
    best, scores = None, []
    for run in progress.bar(range(restarts), desc=f"k-means (k={k})", unit="run"):
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed * 1000 + run).fit_predict(reduced)
        sub = labels[rows]
        score = float(silhouette_score(reduced[rows], sub)) if len(np.unique(sub)) > 1 else -1.0
        scores.append(score)
        if best is None or score > best[0]:
            best = (score, labels.astype(np.int64))
    info = {"pca_dims": dims, "clusters": k, "restarts": restarts, "silhouettes": scores, "silhouette": best[0]}
    logging.info("Visual clusters: PCA %d → %d dims, k-means k=%d, best silhouette %.4f of %d runs", d, dims, k,
                 best[0], restarts)
    return best[1], info
