"""The TensorBoard Embedding Projector for a run: the item vectors its export index holds
(and the users' query vectors), with ``metadata.tsv`` and, where the data set has images,
an image sprite.

Written into ``<run>/tensorboard/projector/``: a checkpoint holding the vectors (``vectors-1``),
``projector_config.pbtxt``, ``items.tsv`` / ``users.tsv`` (metadata, one row per vector
after a header) and ``sprite.png`` (one tile per item, in the metadata's order).
"""
import os
import shutil

import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins import projector

from tfvrec.inspect.pictures import Thumbnails, png_bytes, sprite
from tfvrec import registry
from tfvrec.serving.parts import ExportError, ServingParts

MAX_POINTS = 10000  # the most popular items (and users) beyond this are left out
MAX_SPRITE_SIDE = 8192  # TensorBoard's limit on a sprite's width and height, in pixels


def _clean(value):
    return str(value).replace("\t", " ").replace("\n", " ")


def item_metadata(dataset, rows, popularity=None):
    """Metadata rows (id, creator, artist, popularity, tags) of catalogue ``rows``; ``popularity``:
    training interactions per item (counted here when not given)."""
    if popularity is None:
        popularity = np.bincount(dataset.split("train")["item"].to_numpy(np.int64), minlength=dataset.num_items)
    out = []
    for r in rows:
        creator = dataset.item_creator[r]
        artist = dataset.item_artist[r]
        out.append([dataset.item_ids[r], dataset.user_ids[creator] if creator >= 0 else "",
                    dataset.artist_ids[artist] if artist >= 0 else "", int(popularity[r]),
                    ",".join(map(str, dataset.item_tags[r][:8])) if len(dataset.item_tags) else ""])
    return ["item", "creator", "artist", "popularity", "tags"], out


def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(_clean(v) for v in row) + "\n")


def _most_active(rows, vectors, counts, limit):
    """``(rows, vectors)`` cut to the ``limit`` rows with the most training interactions (``counts``
    indexed by row), in their original order."""
    rows, vectors = np.asarray(rows, np.int64), np.asarray(vectors, np.float32)
    if len(rows) <= limit:
        return rows, vectors
    keep = np.sort(np.argsort(-counts[rows], kind="stable")[:limit])
    return rows[keep], vectors[keep]


def write_projector(logdir, dataset, item_rows, item_vectors, user_rows=None, user_vectors=None,
                    max_points=MAX_POINTS, tile_size=48):
    """Write the projector files for the item vectors ``[len(item_rows), d]`` (catalogue rows of
    ``dataset``) and optionally users'; returns what was written (a dict, for the log)."""
    shutil.rmtree(logdir, ignore_errors=True)  # a re-evaluated run replaces its projector files
    os.makedirs(logdir)
    train = dataset.split("train")
    item_counts = np.bincount(train["item"].to_numpy(np.int64), minlength=dataset.num_items)
    item_rows, item_vectors = _most_active(item_rows, item_vectors, item_counts, max_points)
    variables = {"items": tf.Variable(item_vectors, name="items")}
    config = projector.ProjectorConfig()
    header, rows = item_metadata(dataset, item_rows, item_counts)
    _write_tsv(os.path.join(logdir, "items.tsv"), header, rows)
    written = {"items": len(item_rows), "dim": int(item_vectors.shape[1]), "sprite": False}
    embedding = config.embeddings.add()
    embedding.tensor_name = "items/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "items.tsv"
    thumbnails = Thumbnails(dataset, tile_size)
    if thumbnails.available:
        side = int(np.ceil(np.sqrt(len(item_rows))))
        thumbnails.size = max(8, min(tile_size, MAX_SPRITE_SIDE // max(side, 1)))
        with open(os.path.join(logdir, "sprite.png"), "wb") as f:
            f.write(png_bytes(sprite(thumbnails.tiles(item_rows)), compress_level=1))
        embedding.sprite.image_path = "sprite.png"
        embedding.sprite.single_image_dim.extend([thumbnails.size, thumbnails.size])
        written.update(sprite=True, tile=thumbnails.size, missing_images=thumbnails.missing)
    if user_vectors is not None and len(user_vectors):
        likes = np.bincount(train["user"].to_numpy(np.int64), minlength=dataset.num_users)
        user_rows, user_vectors = _most_active(user_rows, user_vectors, likes, max_points)
        _write_tsv(os.path.join(logdir, "users.tsv"), ["user", "training likes"],
                   [[dataset.user_ids[u], int(likes[u])] for u in user_rows])
        variables["users"] = tf.Variable(user_vectors, name="users")
        embedding = config.embeddings.add()
        embedding.tensor_name = "users/.ATTRIBUTES/VARIABLE_VALUE"
        embedding.metadata_path = "users.tsv"
        written["users"] = len(user_rows)
    # save(), not write(): the plugin finds the vectors through the log directory's `checkpoint`
    # state file (relative paths, so the run directory can be moved).
    tf.train.Checkpoint(**variables).save(os.path.join(logdir, "vectors"))
    projector.visualize_embeddings(logdir, config)
    # TensorBoard lists as runs only directories with an event file: one text summary says what this is.
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        tf.summary.text("projector/about", f"The export index's item vectors ({written['items']} × "
                        f"{written['dim']}), metadata items.tsv" + (", sprite.png" if written["sprite"] else "")
                        + (f"; user vectors ({written['users']})" if "users" in written else ""), step=0)
    writer.close()
    return written


def index_vectors(config, dataset, model):
    """``(item rows, item vectors, user rows, user vectors)`` the run's export index would hold,
    or None when the model's export is not a retrieval index."""
    spec = registry.model_spec(config.model.name)
    if not spec.serving or spec.evaluation:  # no adapter, or not a user–item model (a tag recommender)
        return None
    try:
        parts = registry.resolve(spec.serving)(config, dataset, model)
    except ExportError as e:  # a run its adapter cannot export has no index to show
        logging.info("Projector skipped: %s", e)
        return None
    if not isinstance(parts, ServingParts):
        return None
    item_rows = dataset.item_index([str(i) for i in parts.item_ids])
    user_rows = user_vectors = None
    if parts.user_ids is not None and parts.user_vectors is not None:
        user_rows, user_vectors = dataset.user_index([str(u) for u in parts.user_ids]), parts.user_vectors
    return item_rows, parts.item_vectors, user_rows, user_vectors
