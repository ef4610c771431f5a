"""The one rule for items that join a trained content model's catalogue without retraining.

A new item whose id is already a catalogue id *is* that item with new content (a
re-photographed painting, a corrected embedding): its vector replaces the catalogue's.
Any other id is appended. Used by ``tfvrec index`` (a new export version) and by
cold-start recommendation in process (`tfvrec.inference`, through the same export adapters), so both agree.
"""
import numpy as np

from tfvrec.data.errors import DataError


def merge_catalogue(item_ids, item_vectors, new_ids, new_vectors, replace_all=False, source="<new items>"):
    """``(ids [N'], vectors [N', d], replaced [m] bool)`` after adding the new items.

    ``replace_all``: the catalogue becomes exactly the new items. ``replaced`` marks the
    new items that took the place of a catalogue item of the same id.
    """
    new_ids = np.asarray([str(i) for i in new_ids])
    new_vectors = np.asarray(new_vectors, np.float32)
    if len(new_ids) != len(new_vectors):
        raise DataError(source, f"{len(new_ids)} new item ids but {len(new_vectors)} vectors")
    unique, counts = np.unique(new_ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(source, "new item ids must be unique", key=str(unique[counts > 1][0]))
    if replace_all:
        return new_ids, new_vectors, np.zeros(len(new_ids), bool)
    ids = np.asarray([str(i) for i in item_ids])
    vectors = np.asarray(item_vectors, np.float32).copy()
    position = {item: n for n, item in enumerate(ids)}
    update = np.array([position.get(i, -1) for i in new_ids], np.int64)
    replaced = update >= 0
    vectors[update[replaced]] = new_vectors[replaced]
    return (np.concatenate([ids, new_ids[~replaced]]), np.concatenate([vectors, new_vectors[~replaced]], axis=0),
            replaced)
