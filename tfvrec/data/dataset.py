"""The tfvrec data set: one on-disk layout for a social image platform, and its loader.

Layout (full description in ``docs/data_format.md``)::

    <dataset>/
      dataset.yaml                 name, source, notes (optional)
      users.tsv                    user
      items.tsv                    item [creator] [artist] [image] [tags]
      interactions/train.tsv       user item [timestamp] [basket] [rating]
      interactions/validation.tsv  (optional) same columns
      interactions/test.tsv        (optional) same columns
      social.tsv                   (optional) user followed
      post_tags.tsv                (optional) user item tag
      groups.tsv                   (optional) group user
      features/<name>.npz          (optional) item-keyed dense vectors
      images.npz                   (optional) item-keyed uint8 pixels [n, h, w, 3]

All tables are tab separated with a header line; ids are strings. Every id must
resolve (an item's creator is a user; an interaction's user and item exist), so
loading fails with the file, line and reason instead of silently dropping rows.
Every row has the header's number of fields, and every file ends with a newline: a
table cut short (a truncated copy) is refused, or with ``truncated="drop"`` its
unterminated last row is dropped and reported. In memory, ids become contiguous int
indices into ``user_ids`` / ``item_ids`` (object arrays of str, so memory stays in
proportion to the file whatever the length of one id); errors quote at most
`tfvrec.errors.QUOTE_LIMIT` characters of the input.
"""
import csv
import dataclasses
import io
import os
import shutil
from typing import Dict, Optional

import numpy as np
import pandas as pd
import yaml
from absl import logging

from tfvrec import input_files, outputs, safe_yaml
from tfvrec.data import features as features_lib
from tfvrec.data.errors import DataError
from tfvrec.errors import quote

SPLITS = ("train", "validation", "test")

# file -> (required columns, optional columns)
SCHEMA = {
    "users.tsv": (("user",), ()),
    "items.tsv": (("item",), ("creator", "artist", "image", "tags")),
    "interactions": (("user", "item"), ("timestamp", "basket", "rating")),
    "social.tsv": (("user", "followed"), ()),
    "post_tags.tsv": (("user", "item", "tag"), ()),
    "groups.tsv": (("group", "user"), ()),
}
TAG_SEPARATOR = "|"
# Columns holding ids; no id may be longer (in characters) than MAX_ID_LENGTH.
ID_COLUMNS = ("user", "item", "creator", "artist", "followed", "group", "tag", "basket")
MAX_ID_LENGTH = 256
TRUNCATED = ("error", "drop")  # what to do with a table whose last row has no final newline


@dataclasses.dataclass
class Dataset:
    """A loaded, validated data set. Ids in every table are int indices."""

    path: str
    name: str
    user_ids: np.ndarray  # str, index -> external id
    item_ids: np.ndarray
    interactions: Dict[str, pd.DataFrame]  # split -> user, item[, timestamp, basket, rating]
    item_creator: np.ndarray  # int user index per item, -1 for none
    item_artist: np.ndarray  # int artist index per item, -1 for none
    artist_ids: np.ndarray
    item_tags: list  # per item: list of tag strings
    item_image: np.ndarray  # per item: image path ('' for none), absolute
    social: Optional[pd.DataFrame] = None  # user, followed
    post_tags: Optional[pd.DataFrame] = None  # user, item, tag (tag = index into tag_ids)
    tag_ids: Optional[np.ndarray] = None
    groups: Optional[pd.DataFrame] = None  # group (index into group_ids), user
    group_ids: Optional[np.ndarray] = None
    metadata: dict = dataclasses.field(default_factory=dict)
    # Set by an item-disjoint split (`tfvrec.data.splits.prepare_splits`, data.split: new_items): the
    # held-out items per split ("test", "validation": sorted indices) and the post tags users put on
    # them, taken out of `post_tags` so no model trains on them.
    heldout_items: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    heldout_post_tags: Optional[pd.DataFrame] = None

    def __post_init__(self):
        self._user_index = pd.Index(self.user_ids)
        self._item_index = pd.Index(self.item_ids)

    @property
    def num_users(self):
        return len(self.user_ids)

    @property
    def num_items(self):
        return len(self.item_ids)

    def split(self, name):
        if name not in self.interactions:
            raise DataError(os.path.join(self.path, "interactions"),
                            f"no '{name}' split (present: {sorted(self.interactions)})")
        return self.interactions[name]

    def user_index(self, ids, path="<ids>"):
        return _resolve(self._user_index, ids, path, "user", "users.tsv")

    def item_index(self, ids, path="<ids>"):
        return _resolve(self._item_index, ids, path, "item", "items.tsv")

    def feature_names(self):
        folder = os.path.join(self.path, "features")
        if not os.path.isdir(folder):
            return []
        sharded = features_lib.sharded_names(folder)
        whole = {f[:-4] for f in os.listdir(folder) if f.endswith(".npz")} - {
            f[:-4] for f in os.listdir(folder) if f.endswith(".npz") and any(f.startswith(n + "-") for n in sharded)}
        return sorted(whole | set(sharded))

    def features(self, name):
        """Feature matrix ``[num_items, d]`` aligned with ``item_ids`` (``<name>.npz`` or its shards)."""
        stem = os.path.join(self.path, "features", name)
        if not os.path.exists(stem + ".npz") and name not in features_lib.sharded_names(os.path.dirname(stem)):
            raise DataError(stem + ".npz", f"feature set '{name}' not found (available: {self.feature_names()})")
        ids, vectors = features_lib.load_feature_set(stem)
        where = stem + ".npz" if os.path.exists(stem + ".npz") else stem + "-*-of-*.npz"
        return features_lib.align_features(where, ids, vectors, self.item_ids)

    def images(self):
        """Pixel arrays ``uint8 [num_items, h, w, 3]`` from ``images.npz``, aligned with ``item_ids``."""
        path = os.path.join(self.path, "images.npz")
        if not os.path.exists(path):
            raise DataError(path, "this data set has no images.npz")
        arrays = input_files.load_npz(path, "a .npz pixel archive", names=("item", "pixels"))
        ids, pixels = arrays["item"].astype(str), arrays["pixels"]
        return features_lib.align_features(path, ids, pixels, self.item_ids)

    def train_items_by_user(self):
        """List (per user index) of the sorted item indices the user has in the train split."""
        train = self.split("train")
        order = np.lexsort((train["item"].values, train["user"].values))
        users = train["user"].values[order]
        items = train["item"].values[order]
        bounds = np.searchsorted(users, np.arange(self.num_users + 1))
        return [np.unique(items[bounds[u]:bounds[u + 1]]) for u in range(self.num_users)]


def _resolve(index, ids, path, what, table, first_line=2):
    ids = np.asarray(ids, dtype=object)  # never a fixed-width copy sized by the longest id
    positions = index.get_indexer(ids)
    missing = np.flatnonzero(positions < 0)
    if len(missing):
        row = int(missing[0])
        raise DataError(path, f"{what} {quote(str(ids[row]))} is not in {table} "
                              f"({len(missing)} unresolved {what} ids in all)", line=row + first_line)
    return positions.astype(np.int64)


def _read_bytes(path):
    # A regular file (a FIFO or device would block or never end), at most TFVREC_MAX_INPUT_BYTES.
    try:
        return input_files.read_input(path, "a tab-separated table")
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror or e})") from None


def _line_fields(raw, sep):
    """Per physical line: (number of fields, blank?) — quote-aware when the file has quotes."""
    if b'"' not in raw:
        data = np.frombuffer(raw, dtype=np.uint8)
        ends = np.flatnonzero(data == 10)
        separators = np.flatnonzero(data == ord(sep))
        fields = np.diff(np.searchsorted(separators, ends), prepend=0) + 1
        starts = np.r_[0, ends[:-1] + 1]
        lengths = ends - starts
        blank = (lengths == 0) | ((lengths == 1) & (data[np.maximum(ends - 1, 0)] == 13))
        return fields, blank, np.arange(1, len(ends) + 1)
    text = raw.decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"')
    fields, blank, lines = [], [], []
    previous = 0
    for row in reader:
        fields.append(len(row))
        blank.append(len(row) == 0)
        lines.append(previous + 1)
        previous = reader.line_num
    return np.asarray(fields), np.asarray(blank, dtype=bool), np.asarray(lines)


def _check_rows(path, raw, sep, truncated, required_columns=None):
    """Refuse a table cut short or with rows of the wrong width; returns (raw, note of a dropped row)."""
    if truncated not in TRUNCATED:
        raise ValueError(f"truncated must be one of {TRUNCATED}, got {truncated!r}")
    if b"\x00" in raw:
        raise DataError(path, "holds NUL bytes: a binary file, not a tab-separated UTF-8 table")
    note = None
    if raw and not raw.endswith(b"\n"):
        last_start = raw.rfind(b"\n") + 1
        line = raw.count(b"\n") + 1
        if line > 1:
            if truncated == "error":
                raise DataError(path, "the last line does not end with a newline: the file looks truncated (cut "
                                      "short while copied or written?). If that row is complete, end the file with "
                                      "a newline; to drop it instead set data.truncated_rows: drop (or pass "
                                      "--drop-truncated-rows)", line=line)
            note = f"{path}: dropped line {line}, which had no final newline (truncated)"
            logging.warning("%s", note)
            raw = raw[:last_start]
        else:
            raw = raw + b"\n"  # a header alone: nothing to lose
    fields, blank, lines = _line_fields(raw, sep)
    if not len(fields):
        return raw, note
    content = np.flatnonzero(~blank)
    inside = np.flatnonzero(blank[:content[-1]]) if len(content) else []
    if len(inside):  # (pandas would skip it, and every later line number would be off by one)
        raise DataError(path, "blank line inside the table; remove it (every line is a row)",
                        line=int(lines[inside[0]]))
    expected = int(fields[content[0]]) if len(content) else 0
    wrong = content[fields[content] != expected]
    if len(wrong):
        row = int(wrong[0])
        columns = f" ({quote(required_columns)})" if required_columns else ""
        raise DataError(path, f"has {int(fields[row])} fields, the first line has {expected}{columns}; every row "
                              "needs one value (possibly empty) per column", line=int(lines[row]))
    return raw, note


def _parse(path, raw, sep, **options):
    try:
        return pd.read_csv(io.BytesIO(raw), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                           encoding="utf-8", **options)
    except pd.errors.EmptyDataError:
        raise
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1 if e.start < len(raw) else None
        raise DataError(path, "not UTF-8 text (a binary file?)", line=line) from None
    except pd.errors.ParserError as e:
        raise DataError(path, f"cannot parse as a {'comma' if sep == ',' else 'tab'}-separated table: "
                              f"{quote(str(e))}") from None


def read_table(path, required, optional=(), allow_headerless=False, truncated="error", notes=None):
    """Read a TSV/CSV table as strings, checking its columns, row widths and final newline.

    With ``allow_headerless``, a file whose first line is not a header is read with
    the required columns in order (e.g. the raw ``user<TAB>item`` held-out files).
    ``truncated="drop"`` drops an unterminated last row (appending a note to ``notes``).
    Returns ``(frame, first_data_line)``.
    """
    sep = "," if path.endswith(".csv") else "\t"
    raw, note = _check_rows(path, _read_bytes(path), sep, truncated)
    if note and notes is not None:
        notes.append(note)
    try:
        frame = _parse(path, raw, sep)
    except pd.errors.EmptyDataError:
        raise DataError(path, f"file is empty; expected a header line with columns {list(required)}") from None
    first_line = 2
    columns = [c.strip() for c in frame.columns]
    if allow_headerless and not set(required) <= set(columns):
        if len(columns) < len(required):
            raise DataError(path, f"expected at least {len(required)} columns ({', '.join(required)}), "
                                  f"found {len(columns)}", line=1)
        frame = _parse(path, raw, sep, header=None)
        frame = frame.iloc[:, :len(required)]
        frame.columns = list(required)
        _check_ids(frame, path, 1)
        return frame, 1
    frame.columns = columns
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {quote(columns)}, "
                              f"expected {list(required)} plus optional {list(optional)}", line=1)
    unknown = [c for c in columns if c not in required and c not in optional]
    if unknown:
        raise DataError(path, f"unexpected column(s) {quote(unknown)}; valid columns are "
                              f"{list(required) + list(optional)}", line=1)
    for column in required:
        empty = np.flatnonzero(frame[column].str.strip().values == "")
        if len(empty):
            raise DataError(path, f"empty value in required column '{column}'", line=int(empty[0]) + first_line)
    _check_ids(frame, path, first_line)
    return frame, first_line


def _check_ids(frame, path, first_line):
    for column in frame.columns:
        if column in ID_COLUMNS and len(frame):
            lengths = frame[column].str.len().values
            if lengths.max() > MAX_ID_LENGTH:
                row = int(np.argmax(lengths > MAX_ID_LENGTH))
                raise DataError(path, f"{column} id of {int(lengths[row]):,} characters (at most {MAX_ID_LENGTH}): "
                                      f"{quote(frame[column].iloc[row])}", line=row + first_line)


def _check_unique(frame, columns, path, first_line, what):
    dup = frame.duplicated(subset=list(columns), keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.values)
        key = tuple(str(v) for v in frame.iloc[rows[0]][list(columns)])
        same = [int(r) + first_line for r in rows if tuple(str(v) for v in frame.iloc[r][list(columns)]) == key][:2]
        raise DataError(path, f"duplicate {what} {quote(key if len(key) > 1 else key[0])} "
                              f"(lines {same[0]} and {same[1]}); {what} must be unique", line=same[1])


def _numeric(frame, column, path, first_line, kind):
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.astype(float))
    if bad.any():
        row = int(np.flatnonzero(bad.values)[0])
        raise DataError(path, f"column '{column}' must be a finite {kind}, got {quote(frame[column].iloc[row])}",
                        line=row + first_line)
    return values.astype(np.int64 if kind == "integer" else np.float32).values


def read_interactions(path, dataset, allow_headerless=False, truncated="error"):
    """Read an interaction table against ``dataset``'s users and items (int indices out)."""
    required, optional = SCHEMA["interactions"]
    frame, first = read_table(path, required, optional, allow_headerless=allow_headerless, truncated=truncated,
                              notes=dataset.metadata.setdefault("dropped_rows", []))
    if len(frame) == 0:
        raise DataError(path, "split is empty; expected at least one interaction")
    out = pd.DataFrame({
        "user": dataset.user_index(frame["user"].values, path),
        "item": dataset.item_index(frame["item"].values, path),
    })
    if "timestamp" in frame:
        out["timestamp"] = _numeric(frame, "timestamp", path, first, "integer")
    if "rating" in frame:
        out["rating"] = _numeric(frame, "rating", path, first, "number")
    if "basket" in frame:
        out["basket"] = frame["basket"].values
    _check_unique(frame, [c for c in frame.columns if c != "rating"], path, first, "interaction")
    return out


def _read_metadata(meta_path):
    # (no aliases, bounded size and depth, no duplicate keys: tfvrec.safe_yaml)
    metadata = safe_yaml.load_file(meta_path, what="YAML (name, source, notes)", error=safe_yaml.data_error)
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise DataError(meta_path, f"expected a mapping (name, source, notes), got {type(metadata).__name__}")
    if "name" in metadata and not isinstance(metadata["name"], (str, int)):
        raise DataError(meta_path, "key 'name' must be a string", key="name")
    return metadata


def load_dataset(path, truncated="error") -> Dataset:
    """Load and validate a data set directory. Raises `DataError` naming file, line and reason.

    ``truncated="drop"`` drops (and reports in ``metadata["dropped_rows"]``) the unterminated
    last row of a table instead of refusing it."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise DataError(path, "data set directory not found")
    metadata = {}
    meta_path = os.path.join(path, "dataset.yaml")
    if os.path.exists(meta_path):
        metadata = _read_metadata(meta_path)
    name = str(metadata.get("name", os.path.basename(path)))
    notes = metadata.setdefault("dropped_rows", [])

    users_path = os.path.join(path, "users.tsv")
    users, first = read_table(users_path, *SCHEMA["users.tsv"], truncated=truncated, notes=notes)
    _check_unique(users, ["user"], users_path, first, "user")
    items_path = os.path.join(path, "items.tsv")
    items, first = read_table(items_path, *SCHEMA["items.tsv"], truncated=truncated, notes=notes)
    _check_unique(items, ["item"], items_path, first, "item")
    if len(users) == 0 or len(items) == 0:
        raise DataError(users_path if len(users) == 0 else items_path, "table is empty")

    user_ids = users["user"].values.astype(object)
    item_ids = items["item"].values.astype(object)
    user_index = pd.Index(user_ids)

    creator = np.full(len(items), -1, dtype=np.int64)
    if "creator" in items:
        creator = _resolve_optional(user_index, items["creator"].values, items_path, first, "creator")
    artist_ids = np.array([], dtype=str)
    artist = np.full(len(items), -1, dtype=np.int64)
    if "artist" in items:
        has = items["artist"].values != ""
        artist_ids, codes = np.unique(items["artist"].values[has], return_inverse=True)
        artist[has] = codes
    tags = [[t for t in s.split(TAG_SEPARATOR) if t] for s in items["tags"].values] if "tags" in items \
        else [[] for _ in range(len(items))]
    image = np.array([""] * len(items), dtype=object)
    if "image" in items:
        image = np.array([os.path.join(path, p) if p else "" for p in items["image"].values], dtype=object)

    dataset = Dataset(path=path, name=name, user_ids=user_ids, item_ids=item_ids, interactions={},
                      item_creator=creator, item_artist=artist, artist_ids=artist_ids, item_tags=tags,
                      item_image=image, metadata=metadata)

    for split in SPLITS:
        split_path = os.path.join(path, "interactions", f"{split}.tsv")
        if os.path.exists(split_path):
            dataset.interactions[split] = read_interactions(split_path, dataset, truncated=truncated)
        elif split == "train":
            raise DataError(split_path, "the train split is required")

    social_path = os.path.join(path, "social.tsv")
    if os.path.exists(social_path):
        social, first = read_table(social_path, *SCHEMA["social.tsv"], truncated=truncated, notes=notes)
        _check_unique(social, ["user", "followed"], social_path, first, "social link")
        dataset.social = pd.DataFrame({
            "user": dataset.user_index(social["user"].values, social_path),
            "followed": _resolve(user_index, social["followed"].values, social_path, "followed user",
                                 "users.tsv", first_line=first)})
    tags_path = os.path.join(path, "post_tags.tsv")
    if os.path.exists(tags_path):
        post_tags, first = read_table(tags_path, *SCHEMA["post_tags.tsv"], truncated=truncated, notes=notes)
        _check_unique(post_tags, ["user", "item", "tag"], tags_path, first, "post tag")
        dataset.tag_ids, codes = np.unique(post_tags["tag"].values.astype(object), return_inverse=True)
        dataset.post_tags = pd.DataFrame({
            "user": dataset.user_index(post_tags["user"].values, tags_path),
            "item": dataset.item_index(post_tags["item"].values, tags_path),
            "tag": codes.astype(np.int64)})
    groups_path = os.path.join(path, "groups.tsv")
    if os.path.exists(groups_path):
        groups, first = read_table(groups_path, *SCHEMA["groups.tsv"], truncated=truncated, notes=notes)
        _check_unique(groups, ["group", "user"], groups_path, first, "group membership")
        dataset.group_ids, codes = np.unique(groups["group"].values.astype(object), return_inverse=True)
        dataset.groups = pd.DataFrame({"group": codes.astype(np.int64),
                                       "user": dataset.user_index(groups["user"].values, groups_path)})
    return dataset


def _resolve_optional(index, values, path, first_line, what):
    """Resolve ids where an empty value means "none" (-1)."""
    out = np.full(len(values), -1, dtype=np.int64)
    rows = np.flatnonzero(values != "")
    positions = index.get_indexer(values[rows].astype(object))
    if (positions < 0).any():
        row = int(rows[np.flatnonzero(positions < 0)[0]])
        raise DataError(path, f"{what} {quote(str(values[row]))} is not in users.tsv", line=row + first_line)
    out[rows] = positions
    return out


def write_dataset(path, users, items, interactions, social=None, post_tags=None, groups=None,
                  features=None, images=None, metadata=None, overwrite=False, inputs=None, also_write=None):
    """Write a data set directory atomically (built aside, then renamed into place).

    ``users``/``items``/``social``/``post_tags``/``groups`` are DataFrames with the
    columns of `SCHEMA` (external string-able ids); ``interactions`` maps split name to
    a DataFrame; ``features`` maps feature-set name to ``(item_ids, vectors)``;
    ``images`` is ``(item_ids, uint8 pixels)``. ``overwrite`` replaces only a data set tfvrec
    wrote, and never one of ``inputs`` (``{label: path}``: what the command read), see
    `tfvrec.outputs`; ``also_write(directory)`` adds files before the directory is published.
    """
    path = outputs.prepare(path, "dataset", overwrite=overwrite, inputs=inputs)
    tmp = outputs.temporary(path)
    try:
        os.makedirs(os.path.join(tmp, "interactions"))
        _write_tsv(users, os.path.join(tmp, "users.tsv"), *SCHEMA["users.tsv"])
        items = items.copy()
        if "tags" in items:
            items["tags"] = [TAG_SEPARATOR.join(t) if isinstance(t, (list, tuple)) else t for t in items["tags"]]
        _write_tsv(items, os.path.join(tmp, "items.tsv"), *SCHEMA["items.tsv"])
        for split, frame in interactions.items():
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
            _write_tsv(frame, os.path.join(tmp, "interactions", f"{split}.tsv"), *SCHEMA["interactions"])
        for name, frame in (("social.tsv", social), ("post_tags.tsv", post_tags), ("groups.tsv", groups)):
            if frame is not None:
                _write_tsv(frame, os.path.join(tmp, name), *SCHEMA[name])
        for name, (ids, vectors) in (features or {}).items():
            features_lib.save_features(os.path.join(tmp, "features", f"{name}.npz"), ids, vectors)
        if images is not None:
            ids, pixels = images
            np.savez_compressed(os.path.join(tmp, "images.npz"), item=np.asarray(ids).astype(str),
                                pixels=np.asarray(pixels, dtype=np.uint8))
        with open(os.path.join(tmp, "dataset.yaml"), "w") as f:
            yaml.safe_dump(dict(metadata or {}, name=(metadata or {}).get("name", os.path.basename(path))), f,
                           sort_keys=False)
        if also_write is not None:
            also_write(tmp)
        outputs.publish(tmp, path, "dataset", overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_tsv(frame, path, required, optional):
    columns = list(required) + [c for c in optional if c in frame.columns]
    unknown = set(frame.columns) - set(columns)
    if unknown:
        raise ValueError(f"{os.path.basename(path)}: unexpected columns {sorted(unknown)}")
    frame[columns].to_csv(path, sep="\t", index=False)
