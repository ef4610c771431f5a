"""CDL's training triplets as a `TripletSource` (``tfvrec triplets``): one unit per epoch.

Epoch e's triplets are a pure function of (seed, e) (`TripletSampler.epoch_triplets`), so
epochs are generated independently and placed at their offset e × steps × batch size of
the stream; nothing is deduplicated.
"""
import math

import numpy as np

from tfvrec.models.cdl import triplet_records
from tfvrec.models.cdl.model import item_inputs
from tfvrec.models.cdl.sampling import TripletSampler
from tfvrec.triplets.sources import TripletSource, training_dataset


class CDLTriplets(TripletSource):
    model = triplet_records.MODEL
    schema = triplet_records.SCHEMA
    dedup = False

    def build(self):
        dataset = training_dataset(self.config)
        _, usable, _ = item_inputs(dataset, self.config)  # the images the trainer can read (cached pixels)
        return {"dataset": dataset, "usable": usable,
                "sampler": TripletSampler(dataset, self.config.model.cdl, usable)}

    @property
    def steps(self):
        trainer = self.config.trainer
        return trainer.steps_per_epoch or max(1, math.ceil(self.built["sampler"].triplets_per_epoch
                                                           / trainer.batch_size))

    @property
    def per_epoch(self):
        return self.steps * self.config.trainer.batch_size

    @property
    def planned(self):
        return self.config.trainer.epochs * self.per_epoch

    @property
    def identity(self):
        built = self.built
        return triplet_records.identity(self.config.model.cdl, built["dataset"], built["usable"],
                                        self.config.runtime.seed, self.config.trainer.batch_size, self.steps)

    def first_units(self):
        return self.config.trainer.epochs

    def generate(self, unit):
        users, positives, negatives = self.built["sampler"].epoch_triplets(self.config.runtime.seed, unit,
                                                                           self.per_epoch)
        rows = np.stack([users, positives, negatives, np.full(len(users), unit, np.int64)], axis=1)
        return np.arange(len(rows)), None, rows

    def offset(self, unit):
        return unit * self.per_epoch

    def columns(self, rows):
        rows = np.asarray(rows, np.int64).reshape(-1, len(self.schema))
        return {name: rows[:, k] for k, name in enumerate(self.schema)}

    def stream(self):
        for epoch in range(self.config.trainer.epochs):
            yield self.generate(epoch)[2]

    def notes(self):
        return {"epochs": self.config.trainer.epochs, "steps_per_epoch": self.steps,
                "batch_size": self.config.trainer.batch_size}


def source(config):
    return CDLTriplets(config)
