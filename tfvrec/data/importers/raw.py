"""Reading raw files for the importers: encodings, separators, quoting, columns, ids; every
problem a `DataError` naming the raw file, the line and the reason."""
import csv
import io
import os
import re

import numpy as np
import pandas as pd
from absl import logging

from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec import input_files


class _Raw:
    """One raw table as stripped strings, with the file line of every row (for error messages)."""

    def __init__(self, path, frame, lines):
        self.path = path
        self.frame = frame
        self.lines = lines  # int64 [len(frame)]: 1-based line in the raw file
        self.encoding = None

    def __len__(self):
        return len(self.frame)

    def __getitem__(self, column):
        return self.frame[column].values

    def error(self, row, reason):
        return DataError(self.path, reason, line=int(self.lines[row]))

    def take(self, mask):
        taken = _Raw(self.path, self.frame[mask].reset_index(drop=True), self.lines[mask])
        taken.encoding = self.encoding
        return taken


def _decode(path, encodings):
    data = input_files.read_input(path, "a raw table")  # (a regular file, at most TFVREC_MAX_INPUT_BYTES)
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            last = e
    # Name the line of the first undecodable byte for the last encoding tried.
    line = data.count(b"\n", 0, last.start) + 1
    raise DataError(path, f"not valid {'/'.join(encodings)} text: {last.reason} at byte {last.start}", line=line)


def _text_flags(text, sep, quoted):
    """Whether the text may hold values with whitespace, and whether it may hold empty fields.

    pandas' per-value string methods cost seconds on the 750k-row files. Plain substring
    tests on the whole text (C speed) tell when those passes cannot find anything -- the
    usual case for pure id tables -- so they are skipped. Anything unusual (non-ASCII,
    quoting) takes the thorough per-value path.
    """
    if not text.isascii() or (quoted and '"' in text):
        return True, True
    stray_space = (" " in text or "\x0b" in text or "\x0c" in text or (sep != "\t" and "\t" in text)
                   or text.count("\r") != text.count("\r\n"))
    body = text.replace("\r\n", "\n")
    maybe_empty = stray_space or any(
        (body.startswith(sep), body.startswith("\n"), body.endswith(sep),
         sep + sep in body, "\n" + sep in body, sep + "\n" in body, "\n\n" in body))
    return stray_space, maybe_empty


def read_raw(path, columns, ids=(), sep=None, encodings=("utf-8",), quoted=None, notes=None):
    """Read a raw table with a header line and keep ``columns`` (others are ignored).

    ``ids``: columns holding ids (non-empty, no whitespace). Blank lines are skipped
    (and noted); every other row keeps its raw line number so later checks can
    name it. ``quoted``: honour CSV quoting (default: for .csv files only; the
    tab-separated raw files are unquoted, and a stray ``"`` in a name must not
    swallow the following lines). Returns a `_Raw`.
    """
    if not os.path.exists(path):
        raise DataError(path, "raw file not found")
    if sep is None:
        sep = "," if path.endswith(".csv") else "\t"
    if quoted is None:
        quoted = sep == ","
    text, encoding = _decode(path, encodings)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    except pd.errors.EmptyDataError:
        raise DataError(path, f"file is empty; expected a header line with columns {list(columns)}") from None
    except pd.errors.ParserError as e:
        message = str(e).strip()
        match = re.search(r"line (\d+)", message)
        raise DataError(path, f"cannot parse row: {message.split('error: ')[-1]}",
                        line=int(match.group(1)) if match else None) from None
    stray_space, maybe_empty = _text_flags(text, sep, quoted)
    del text
    found = [c.strip() for c in frame.columns]
    frame.columns = found
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {found}, expected {list(columns)}", line=1)
    frame = frame[list(columns)]
    lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    if stray_space:
        for column in columns:
            frame[column] = frame[column].str.strip()
    blank = (frame == "").all(axis=1).values if maybe_empty else np.zeros(len(frame), dtype=bool)
    if blank.any():
        _note(notes, f"{os.path.basename(path)}: skipped {int(blank.sum())} blank line(s) "
                     f"(first: line {int(lines[blank][0])})")
        frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    raw = _Raw(path, frame, lines)
    for column in columns if maybe_empty else ():
        empty = np.flatnonzero(frame[column].values == "")
        if len(empty):
            raise raw.error(empty[0], f"empty value in column '{column}' (row has too few fields?)")
    for column in ids if stray_space else ():
        spaced = np.flatnonzero(frame[column].str.contains(r"\s", regex=True).values)
        if len(spaced):
            value = frame[column].iloc[spaced[0]]
            raise raw.error(spaced[0], f"id in column '{column}' contains whitespace: {value!r}")
    raw.encoding = encoding
    return raw


def _numbers(raw, column, kind):
    """Parse a column as finite integers/floats; DataError naming the first bad line."""
    values = pd.to_numeric(raw.frame[column], errors="coerce").astype(float).values
    bad = ~np.isfinite(values)
    if kind == "integer":
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise raw.error(row, f"column '{column}' must be a finite {kind}, got {raw.frame[column].iloc[row]!r}")
    return values.astype(np.int64) if kind == "integer" else values


def _check_known(raw, column, known, table):
    """Every id in ``column`` must be in ``known`` (array of ids); else DataError naming the first bad line."""
    unknown = ~pd.Series(raw[column]).isin(known).values
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise raw.error(row, f"{column} {raw[column][row]!r} is not in {table} "
                             f"({int(unknown.sum())} such rows in all)")


def _drop_duplicates(raw, columns, what, notes):
    """Drop exact repeats of ``columns`` (the format requires unique rows), noting how many and where."""
    dup = raw.frame.duplicated(subset=list(columns)).values
    if not dup.any():
        return raw
    row = int(np.flatnonzero(dup)[0])
    key = raw.frame.iloc[row][list(columns)]
    first = int(np.flatnonzero((raw.frame[list(columns)] == key).all(axis=1).values)[0])
    _note(notes, f"{os.path.basename(raw.path)}: dropped {int(dup.sum())} duplicate {what} row(s) "
                 f"(first: line {int(raw.lines[row])} repeats line {int(raw.lines[first])}, "
                 f"{tuple(str(v) for v in key)})")
    return raw.take(~dup)


def _note(notes, message):
    logging.warning("%s", message)
    if notes is not None:
        notes.append(message)


def _sorted_ids(*arrays):
    """Unique ids, numerically ordered when they are all integers (readable tables), else lexically."""
    ids = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    ids = np.asarray(ids, dtype=str)
    if len(ids) and pd.Series(ids).str.fullmatch(r"\d{1,18}").all():
        return ids[np.argsort(ids.astype(np.int64), kind="stable")]
    return np.sort(ids)


def _integral_as_int(values):
    """Whole-number floats as int64 (so 13883 is written as 13883, not 13883.0)."""
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def _path(raw_dir, name):
    return os.path.join(raw_dir, name)


def _option_error(message):
    """Bad importer name/options come from a config or the command line: a `ConfigError` (a ValueError)."""
    return ConfigError(message)
