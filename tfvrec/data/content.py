"""What an item is, for a content model: its content vector, from the data set alone.

Content models (CuratorNet, VBPR, VisRank) read items through here, so an item nobody has
interacted with yet — a new painting, a poster that just arrived — has its vector like any other.
"""
import numpy as np

from tfvrec.errors import ConfigError

ITEM_CONTENT = ("features", "artist_onehot")


def item_content(dataset, kind, features_name, key="item_content"):
    """``(content float32 [num_items, d], description)``.

    ``kind``: ``"features"`` — the data set's feature set ``features_name`` (frozen CNN embeddings,
    e.g. CuratorNet's ResNet50 vectors); ``"artist_onehot"`` — a one-hot vector of the item's artist,
    for data sets without image embeddings (UGallery's public part). ``key`` names the config key in
    errors."""
    if kind == "artist_onehot":
        has = dataset.item_artist >= 0
        if not has.any():
            raise ConfigError(f"{dataset.path}: {key} is 'artist_onehot' but no item has an artist (items.tsv has "
                              "no artist column)")
        content = np.zeros((dataset.num_items, len(dataset.artist_ids)), dtype=np.float32)
        content[np.flatnonzero(has), dataset.item_artist[has]] = 1.0
        note = (f"items use artist one-hot content ({len(dataset.artist_ids)} artists, "
                f"{int((~has).sum())} items without one); no image embeddings")
        return content, note
    if kind != "features":
        raise ConfigError(f"{key} must be one of {list(ITEM_CONTENT)}, got {kind!r}")
    if not features_name:
        raise ConfigError(f"{key} is 'features' but data.features is empty; name a feature set of the data set "
                          "(features/<name>.npz) or use artist_onehot")
    content = dataset.features(features_name)
    return content, f"items use features '{features_name}' ({content.shape[1]}-d)"
