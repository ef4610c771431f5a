"""CDL's user vectors (Lei et al., §5): what a user is, before the user tower sees them.

1. Every tag gets a vector: read from an embedding file (``tag v1 v2 ...`` per line, e.g.
   word vectors), or learned from the data's own tag–item co-occurrence — positive pointwise
   mutual information of (tag, item) followed by a truncated SVD (numpy only).
2. The tag vectors are clustered by k-means into C clusters (the paper: word2vec vectors,
   1024 semantic clusters), which absorbs synonyms and the sparsity of raw tags.
3. A user's vector is the normalised histogram, over those C clusters, of the tags of the
   images in their training history (plus the tags they applied themselves, where the data
   has them): ``U = counts / Σ counts``, the bag of words over clusters. A vector reads the
   training interactions only: post tags on held-out pairs (a user's tags on a hidden
   favourite) take no part in the tags, the clusters or the counts (`readable_post_tags`).

Nothing here is trained with the network, so a new user's vector comes from any list of
images or tags (`UserVectors.from_items`, `UserVectors.from_tags`) without retraining.
TensorFlow-free.
"""
import dataclasses
import io

import numpy as np
from absl import logging

from tfvrec import input_files
from tfvrec.errors import ConfigError


def readable_post_tags(dataset):
    """The rows of ``post_tags`` a model may read: all but those on a *held-out* pair, a (user, item)
    that is an interaction of another split than ``train`` (test, validation, the trainer's
    ``train_holdout``) and not of ``train``. A tag the user put on a held-out favourite would tell
    the user vector (and the interest tags of §5's negatives) the answer; a tag on an item the user
    never interacted with is tagging history (§5), which the paper reads. None without post tags."""
    frame = dataset.post_tags
    if frame is None or not len(frame):
        return None
    n = np.int64(dataset.num_items)

    def keys(f):
        return f["user"].to_numpy(np.int64) * n + f["item"].to_numpy(np.int64)
    train = keys(dataset.split("train")) if "train" in dataset.interactions else np.zeros(0, np.int64)
    others = [keys(f) for s, f in dataset.interactions.items() if s != "train"]
    held_out = np.setdiff1d(np.concatenate(others), train) if others else np.zeros(0, np.int64)
    return frame[~np.isin(keys(frame), held_out)]


def item_tag_lists(dataset):
    """Per item: the distinct tags it carries (``items.tsv`` tags plus the post tags applied to it,
    those on held-out pairs left out: `readable_post_tags`)."""
    tags = [set(t) for t in dataset.item_tags]
    frame = readable_post_tags(dataset)
    if frame is not None:
        names = np.asarray(dataset.tag_ids, object)
        for item, tag in zip(frame["item"].values, frame["tag"].values):
            tags[int(item)].add(str(names[tag]))
    return [sorted(t) for t in tags]


def user_own_tags(dataset):
    """Per user: the tags they applied themselves, but not on held-out pairs (`readable_post_tags`);
    empty lists without post tags."""
    own = [[] for _ in range(dataset.num_users)]
    frame = readable_post_tags(dataset)
    if frame is not None:
        names = np.asarray(dataset.tag_ids, object)
        for user, tag in zip(frame["user"].values, frame["tag"].values):
            own[int(user)].append(str(names[tag]))
    return own


def ppmi_svd(item_tags, vocabulary, dim, seed=0):
    """Tag vectors ``[T, dim]`` from tag–item co-occurrence: PPMI, then truncated SVD (U·√S)."""
    index = {t: n for n, t in enumerate(vocabulary)}
    rows = np.array([index[t] for tags in item_tags for t in tags], np.int64)
    cols = np.repeat(np.arange(len(item_tags)), [len(t) for t in item_tags])
    counts = np.zeros((len(vocabulary), len(item_tags)), np.float64)
    np.add.at(counts, (rows, cols), 1.0)
    # Items that carry no tag take no part; PPMI = max(0, log p(t, i) / (p(t) p(i))).
    total = counts.sum()
    p_tag = counts.sum(axis=1, keepdims=True) / total
    p_item = counts.sum(axis=0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((counts / total) / (p_tag * p_item))
    ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    u, s, _ = np.linalg.svd(ppmi, full_matrices=False)
    k = min(dim, len(s))
    vectors = u[:, :k] * np.sqrt(s[:k])
    # A deterministic sign per component (SVD's is arbitrary).
    vectors *= np.where(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(k)] < 0, -1.0, 1.0)
    if k < dim:
        vectors = np.pad(vectors, [(0, 0), (0, dim - k)])
    return vectors.astype(np.float32)


def _config_error(path, reason):
    return ConfigError(f"{path}: {reason}")


def read_tag_vectors(path, vocabulary):
    """Tag vectors from a text file ``tag v1 v2 ...`` per line; tags missing from it get none (-1 cluster)."""
    wanted, found = set(vocabulary), {}
    try:
        with io.TextIOWrapper(input_files.open_input(path, "a tag vector file", error=_config_error),
                              encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                if len(parts) < 2 or parts[0] not in wanted:
                    continue
                try:
                    found[parts[0]] = np.asarray(parts[1:], np.float32)
                except ValueError:
                    raise ConfigError(f"{path}, line {number}: expected 'tag v1 v2 ...' with numbers") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the tag vector file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; expected a tag vector file ('tag v1 v2 ...' per line)") from None
    if not found:
        raise ConfigError(f"{path}: no vector for any of the data set's {len(vocabulary)} tags")
    dims = {len(v) for v in found.values()}
    if len(dims) != 1:
        raise ConfigError(f"{path}: vectors of different lengths {sorted(dims)}")
    return found


def kmeans(vectors, k, iterations, seed=0):
    """k-means labels ``[n]`` (scikit-learn, k-means++ start, a fixed seed)."""
    from sklearn.cluster import KMeans
    k = int(min(k, len(vectors)))
    return KMeans(n_clusters=k, n_init=1, max_iter=iterations, random_state=seed).fit_predict(vectors).astype(
        np.int64)


@dataclasses.dataclass
class UserVectors:
    """The tag clustering of a data set, and every known user's vector."""
    vocabulary: np.ndarray  # [T] tag strings
    tag_cluster: np.ndarray  # [T] cluster of each tag (-1: no vector)
    num_clusters: int
    item_counts: np.ndarray  # [num_items, C] float32: cluster counts of each item's tags
    user_vectors: np.ndarray  # [num_users, C] float32: normalised histograms

    def _cluster_of(self, tags):
        index = {t: n for n, t in enumerate(self.vocabulary)}
        clusters = [self.tag_cluster[index[t]] for t in tags if t in index]
        return np.asarray([c for c in clusters if c >= 0], np.int64)

    def counts_of_tags(self, tags):
        return np.bincount(self._cluster_of(tags), minlength=self.num_clusters).astype(np.float32)

    def from_items(self, items, tags=()):
        """A (new) user's vector from the item indices they liked (and tags of their own)."""
        counts = self.item_counts[np.asarray(items, np.int64)].sum(axis=0) + self.counts_of_tags(tags)
        return normalise(counts[None])[0]

    def from_tags(self, tags):
        return normalise(self.counts_of_tags(tags)[None])[0]


def normalise(counts):
    counts = np.asarray(counts, np.float32)
    return counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1e-12)


def build_user_vectors(dataset, c, seed=0):
    """`UserVectors` of ``dataset``'s training likes for config section ``c`` (``model.cdl``)."""
    item_tags = item_tag_lists(dataset)
    own_tags = user_own_tags(dataset) if c.use_own_tags else [[] for _ in range(dataset.num_users)]
    # The vocabulary is what a user vector may read: a tag found only on held-out pairs would still
    # move the k-means clustering of the others.
    vocabulary = np.array(sorted({t for tags in item_tags for t in tags} | {t for tags in own_tags for t in tags}),
                          dtype=object)
    if not len(vocabulary):
        raise ConfigError(f"{dataset.path}: no item carries a tag, so CDL has no user vectors (§4 builds them from "
                          "tags): give items tags (items.tsv tags column, or post_tags.tsv)")
    if c.tag_vectors == "file":
        found = read_tag_vectors(c.tag_vector_file, vocabulary)
        have = np.array([t in found for t in vocabulary])
        vectors = np.stack([found[t] for t in vocabulary[have]])
        labels = np.full(len(vocabulary), -1, np.int64)
        labels[have] = kmeans(vectors, c.num_clusters, c.kmeans_iterations, seed)
        logging.info("CDL user vectors: %d of %d tags have a vector in %s", int(have.sum()), len(vocabulary),
                     c.tag_vector_file)
    else:
        labels = kmeans(ppmi_svd(item_tags, vocabulary, c.tag_vector_dim, seed), c.num_clusters,
                        c.kmeans_iterations, seed)
    num_clusters = int(c.num_clusters)
    index = {t: n for n, t in enumerate(vocabulary)}
    item_counts = np.zeros((dataset.num_items, num_clusters), np.float32)
    for item, tags in enumerate(item_tags):
        for t in tags:
            if labels[index[t]] >= 0:
                item_counts[item, labels[index[t]]] += 1.0
    train = dataset.split("train")
    counts = np.zeros((dataset.num_users, num_clusters), np.float32)
    np.add.at(counts, train["user"].values, item_counts[train["item"].values])
    for user, tags in enumerate(own_tags):
        for t in tags:
            if labels[index[t]] >= 0:
                counts[user, labels[index[t]]] += 1.0
    empty = int((counts.sum(axis=1) == 0).sum())
    if empty:
        logging.info("CDL user vectors: %d of %d users have no tagged training image (zero vector)", empty,
                     dataset.num_users)
    logging.info("CDL user vectors: %d tags in %d clusters", len(vocabulary), len(np.unique(labels[labels >= 0])))
    return UserVectors(vocabulary=vocabulary, tag_cluster=labels, num_clusters=num_clusters, item_counts=item_counts,
                       user_vectors=normalise(counts))
