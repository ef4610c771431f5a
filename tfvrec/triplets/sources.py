"""What a model provides to have its triplets written as records: a `TripletSource`.

A model package names a module in ``ModelSpec.triplets`` whose ``source(config)`` returns
a `TripletSource`. Its generation *units* are pure functions of (seed, unit): CuratorNet's
chunks, CDL's epochs. Two kinds:

* ``dedup = False`` (CDL): unit u's rows are the stream's rows ``offset(u) …`` in full.
* ``dedup = True`` (CuratorNet): units overlap; a triplet is kept at its first
  (unit, position) only, and ``plan(counts, units)`` says, from how many first occurrences
  each unit holds, how many of them the stream takes (the in-process stream's stopping
  rule), or None when more units must be drawn.

A source is pickled to Beam workers without its heavy parts (data set, sampler): each
process builds them once (`built`), from the config.
"""
import dataclasses
import hashlib
import json

from tfvrec.runs import prepare_dataset

_BUILT = {}  # config key → the heavy parts, once per process (Beam's DoFns of one worker share them)


def config_key(config):
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode()).hexdigest()


def training_dataset(config):
    """The data set as the trainer samples from it (with the splits of its run)."""
    return prepare_dataset(config)


class TripletSource:
    """A model's triplet stream as records. Subclasses set ``model``, ``schema``, ``dedup`` and implement:

    - ``build()`` → the heavy parts (a dict), built once per process;
    - ``planned`` → the number of triplets of a complete set (shard sizes derive from it);
    - ``identity`` → the sampling-relevant config keys and the data fingerprint (the manifest's);
    - ``first_units()`` → how many units a Beam pipeline draws first;
    - ``generate(unit)`` → ``(positions, hashes or None, rows int64 [n, k])``, rows in position order;
    - ``offset(unit)`` (``dedup = False``) → the stream index of the unit's first row;
    - ``plan(counts, units)`` (``dedup = True``) → ``{unit: (offset, take)}`` or None;
    - ``columns(rows)`` → the records' columns (name → per-row values) of compact rows;
    - ``stream()`` → the in-process stream's rows, in order (the local writer);
    - ``count(columns)`` → counters for the manifest (e.g. triplets per guideline);
    - ``notes()`` → other facts for the manifest (e.g. the guideline names).
    """

    model = ""
    schema = {}
    dedup = False

    def __init__(self, config):
        self.config = config
        self.key = config_key(config)

    def __getstate__(self):
        return {"config": self.config, "key": self.key}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @property
    def built(self):
        if self.key not in _BUILT:
            _BUILT.clear()  # one config per process at a time: a data set can be large
            _BUILT[self.key] = self.build()
        return _BUILT[self.key]

    def build(self):
        raise NotImplementedError

    def count(self, columns):
        return {}

    def notes(self):
        return {}
