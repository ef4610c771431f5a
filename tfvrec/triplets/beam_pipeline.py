"""``tfvrec triplets --runner beam``: a model's triplet records from an Apache Beam pipeline.

The same records, in the same order, as the in-process writer (`tfvrec.triplets.generate`),
from generation units drawn in parallel (`tfvrec.triplets.sources`)::

    units → Reshuffle → generate each (the source built once per worker)
      dedup (CuratorNet): → (triplet hash, (unit, position, row)) → keep the least
          (unit, position) per hash → group by unit → the plan: from the first-occurrence
          count of each unit, how many the stream takes (side input) → stream index
      fixed (CDL):        → stream index = the unit's offset + position
    → keyed by shard (index // rows per shard) → sorted by index → one shard file each

A dedup plan that needs more units than were drawn (many duplicates, or a stream that
runs dry and must show it) draws twice as many again; the records are those of the
in-process stream either way. Beam is an optional dependency: ``pip install 'tfvrec[beam]'``.
"""
import json
import os

from tfvrec.beam_support import import_beam
from tfvrec.triplets import shards


def _dofns(beam):
    class Generate(beam.DoFn):
        """unit → its rows, keyed for deduplication or placed at their stream index."""

        def __init__(self, source, per_shard):
            self.source, self.per_shard = source, per_shard

        def process(self, unit):
            positions, hashes, rows = self.source.generate(unit)
            if self.source.dedup:
                for position, h, row in zip(positions.tolist(), hashes.tolist(), rows.tolist()):
                    yield h, (unit, position, tuple(row))
            else:
                offset = self.source.offset(unit)
                for position, row in zip(positions.tolist(), rows.tolist()):
                    index = offset + position
                    yield index // self.per_shard, (index, tuple(row))

    class WriteShard(beam.DoFn):
        """(shard, [(index, row)]) → the shard file; yields (shard, count, counters)."""

        def __init__(self, source, directory, num_shards):
            self.source, self.directory, self.num_shards = source, directory, num_shards

        def process(self, keyed):
            import numpy as np
            shard, placed = keyed
            placed = sorted(placed)
            rows = np.asarray([row for _, row in placed], np.int64)
            columns = self.source.columns(rows)
            path = os.path.join(self.directory, shards.shard_name(shard, self.num_shards))
            shards.write_shard(path, shards.encode(self.source.schema, columns))
            yield shard, len(placed), self.source.count(columns)
    return Generate, WriteShard


def _place(group, plan, per_shard):
    """A unit's first occurrences → (shard, (stream index, row)) for those the plan takes."""
    unit, members = group
    if plan is None or unit not in plan:
        return
    offset, take = plan[unit]
    for k, (_, row) in enumerate(sorted(members)[:take]):
        index = offset + k
        yield index // per_shard, (index, row)


def _save(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def _run_once(beam, source, directory, num_shards, per_shard, units, runner, beam_args):
    from apache_beam.options.pipeline_options import PipelineOptions
    Generate, WriteShard = _dofns(beam)
    plan_path, written_path = os.path.join(directory, "plan.json"), os.path.join(directory, "written.json")
    with beam.Pipeline(options=PipelineOptions(list(beam_args), runner=runner)) as pipeline:
        drawn = (pipeline
                 | "Units" >> beam.Create(list(range(units)))
                 | "Spread" >> beam.Reshuffle()
                 | "Generate" >> beam.ParDo(Generate(source, per_shard)))
        if source.dedup:
            by_unit = (drawn
                       | "FirstOccurrence" >> beam.CombinePerKey(min)
                       | "KeyByUnit" >> beam.Map(lambda kv: (kv[1][0], (kv[1][1], kv[1][2])))
                       | "GroupUnits" >> beam.GroupByKey())
            plan = (by_unit
                    | "Count" >> beam.Map(lambda kv: (kv[0], len(list(kv[1]))))
                    | "Counts" >> beam.combiners.ToList()
                    | "Plan" >> beam.Map(lambda counts: source.plan(dict(counts), units)))
            _ = plan | "SavePlan" >> beam.Map(
                lambda p: _save(plan_path, None if p is None else {str(u): v for u, v in p.items()}))
            placed = by_unit | "Place" >> beam.FlatMap(_place, beam.pvalue.AsSingleton(plan), per_shard)
        else:
            placed = drawn
        _ = (placed
             | "GroupShards" >> beam.GroupByKey()
             | "WriteShards" >> beam.ParDo(WriteShard(source, directory, num_shards))
             | "Written" >> beam.combiners.ToList()
             | "SaveWritten" >> beam.Map(lambda rows: _save(written_path, rows)))
    if source.dedup:
        with open(plan_path) as f:
            complete = json.load(f) is not None
        os.remove(plan_path)
        if not complete:
            return None
    with open(written_path) as f:
        written = json.load(f)
    os.remove(written_path)
    return written


def run(source, directory, num_shards, runner="DirectRunner", beam_args=()):
    """Write the records into ``directory``; ``(per-shard counts, counters, facts)`` as the local writer's."""
    beam = import_beam("or write the records in process: --runner local")
    per_shard = shards.rows_per_shard(source.planned, num_shards)
    units = source.first_units()
    while True:
        written = _run_once(beam, source, directory, num_shards, per_shard, units, runner, beam_args)
        if written is not None:
            break
        units *= 2  # the plan needs units not drawn yet: draw more (the records are the same)
    counts, counters = [0] * num_shards, {}
    for shard, n, shard_counters in written:
        counts[shard] = n
        for name, value in shard_counters.items():
            counters[name] = counters.get(name, 0) + value
    for shard in range(num_shards):  # a shard nothing fell into is written empty: the set is complete
        path = os.path.join(directory, shards.shard_name(shard, num_shards))
        if not os.path.exists(path):
            shards.write_shard(path, [])
    return counts, counters, {"beam": {"runner": runner, "units_drawn": units}}
