"""Writing an imported data set (atomic, via `write_dataset`) with its counts and import log."""
import time

from absl import logging

from tfvrec.data.dataset import write_dataset

IMPORTER_VERSION = 1


def _write(name, out_dir, overwrite, started, users, items, interactions, metadata,
           social=None, post_tags=None, notes=()):
    counts = {"users": len(users), "items": len(items)}
    counts.update({split: len(frame) for split, frame in interactions.items()})
    if social is not None:
        counts["social"] = len(social)
    if post_tags is not None:
        counts["post_tags"] = len(post_tags)
    metadata = dict(name=name, **metadata)
    metadata["counts"] = counts
    if notes:
        metadata["import_log"] = list(notes)
    metadata["importer"] = {"module": "tfvrec.data.importers", "version": IMPORTER_VERSION}
    path = write_dataset(out_dir, users, items, interactions, social=social, post_tags=post_tags,
                         metadata=metadata, overwrite=overwrite)
    logging.info("imported %s -> %s: %s (%.1f s)", name, path,
                 ", ".join(f"{k} {v:,}" for k, v in counts.items()), time.time() - started)
    return path
