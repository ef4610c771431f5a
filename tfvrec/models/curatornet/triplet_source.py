"""CuratorNet's D_S as a `TripletSource` (``tfvrec triplets``): chunks of the sampler's stream.

Unit c is chunk c of `TripletSampler.stream` (its own generator, seeded by (seed, c)); a
triplet belongs to D_S at its first (chunk, position), and D_S is the first
``num_triplets`` of those in that order, or fewer when the stream runs dry (`plan`: the
stream's own stopping rule). Rows travel compact (the profile as a range of the
sampler's purchase array) and are materialised only when a shard is written.
"""
import math

import numpy as np

from tfvrec.models.curatornet import triplet_records
from tfvrec.models.curatornet.model import build_sampler
from tfvrec.models.curatornet.sampling import STARVED_CHUNKS, Triplets
from tfvrec.triplets.sources import TripletSource, training_dataset

COMPACT = ("start", "end", "skip", "positive", "negative", "user", "guideline")


def plan(counts, units, num_triplets, chunk):
    """``{chunk: (stream offset, take)}`` from the first-occurrence count of each chunk drawn, as
    `TripletSampler.stream` takes them; None when chunks beyond ``units`` would be needed."""
    emitted, starved, takes = 0, 0, {}
    for unit in range(units):
        take = min(counts.get(unit, 0), num_triplets - emitted)
        if take:
            takes[unit] = (emitted, take)
        emitted += take
        starved = starved + 1 if take < chunk // 100 else 0
        if emitted >= num_triplets or starved >= STARVED_CHUNKS:
            return takes
    return None


class CuratorNetTriplets(TripletSource):
    model = triplet_records.MODEL
    schema = triplet_records.SCHEMA
    dedup = True

    def build(self):
        dataset = training_dataset(self.config)
        return {"dataset": dataset, "sampler": build_sampler(dataset, self.config)}

    @property
    def section(self):
        return self.config.model.curatornet

    @property
    def planned(self):
        return self.section.num_triplets

    @property
    def identity(self):
        return triplet_records.identity(self.config, self.built["dataset"])

    def first_units(self):
        # Chunk 0's share of distinct triplets, less a tenth for duplicates across chunks.
        _, _, first = self.built["sampler"].chunk(self.config.runtime.seed, 0, self.section.sampler_chunk)
        share = max(len(first), 1) / self.section.sampler_chunk
        return max(1, math.ceil(1.1 * self.planned / (share * self.section.sampler_chunk)))

    def generate(self, unit):
        sampler = self.built["sampler"]
        triplets, hashes, first = sampler.chunk(self.config.runtime.seed, unit, self.section.sampler_chunk)
        return first, hashes[first], _compact(triplets.take(first))

    def plan(self, counts, units):
        return plan(counts, units, self.section.num_triplets, self.section.sampler_chunk)

    def columns(self, rows):
        sampler = self.built["sampler"]
        rows = np.asarray(rows, np.int64).reshape(-1, len(COMPACT))
        triplets = Triplets(**{name: rows[:, k] for k, name in enumerate(COMPACT)})
        triplets.guideline = triplets.guideline.astype(np.int8)
        profile = sampler.materialize(triplets)["profile"]
        lengths = sampler.profile_lengths(triplets)
        return {"profile": [row[:n] for row, n in zip(profile, lengths)], "positive": triplets.positive,
                "negative": triplets.negative, "user": triplets.user, "guideline": triplets.guideline}

    def stream(self):
        c, sampler = self.section, self.built["sampler"]
        for triplets in sampler.stream(self.config.runtime.seed, c.num_triplets, chunk=c.sampler_chunk):
            yield _compact(triplets)

    def count(self, columns):
        names = self.built["sampler"].names
        found = np.bincount(np.asarray(columns["guideline"], np.int64), minlength=len(names))
        return {f"guideline {name}": int(n) for name, n in zip(names, found)}

    def notes(self):
        return {"guidelines": list(self.built["sampler"].names)}


def _compact(triplets):
    return np.stack([getattr(triplets, name).astype(np.int64) for name in COMPACT], axis=1)


def source(config):
    return CuratorNetTriplets(config)
