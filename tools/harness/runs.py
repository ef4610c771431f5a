"""Training runs of a benchmark, reused through the run layer only while the measured code is unchanged.

`trained(ctx, config)` is `tfvrec.runs.ensure_trained` ("train unless finished"; a killed run resumes)
with two rules of the harness on top:

- a run directory records the code it was trained with (``bench_trained.json``: commit, hashes of
  uncommitted files, date, load average); a run whose section's measured paths changed since
  (`harness.code.unchanged`) is trained again — a reused figure is a figure of today's code;
- a directory holding another run (`tfvrec.runs.OtherRunError`, by its type, never by its message) is
  the harness's to redo, but only inside the context's runs root: nothing else is ever deleted.

A reused run is listed under the section (`Context.reused`): its training time was measured when it
was trained (the date and load average are said).
"""
import dataclasses
import datetime
import json
import os
import shutil

from harness import code

TRAINED_FILE = "bench_trained.json"


@dataclasses.dataclass
class Trained:
    """A finished run: `tfvrec.runs.Run` and what the harness recorded about its training."""
    run: object
    config: object
    reused: bool
    record: dict

    @property
    def dir(self):
        return self.run.dir

    @property
    def state(self):
        return self.run.state

    @property
    def train_seconds(self):
        return self.state.train_seconds

    @property
    def epochs(self):
        return self.state.completed_epochs

    @property
    def steps(self):
        state = self.state
        return state.completed_epochs * state.steps_per_epoch

    def load(self, dataset=None):
        """``(config, dataset, model)`` with the best weights (`tfvrec.runs.Run.load`)."""
        return self.run.load(dataset=dataset)

    def model(self, dataset=None):
        return self.load(dataset)[2]

    def results(self):
        """``[(row label, EvalResult)]`` of the run's final evaluation (metrics.json)."""
        from tfvrec.evaluation.results import EvalResult
        payload = self.run.metrics
        return [(label, EvalResult.from_dict(r)) for label, r in zip(payload["rows"], payload["results"])]

    def result(self, protocol, label=None):
        """The EvalResult of row ``label`` (default: the run's model) under ``protocol``."""
        label = label or self.run.metrics["model"]
        for name, r in self.results():
            if name == label and r.protocol == protocol:
                return r
        raise KeyError(f"{self.dir}: no {label} row under {protocol}")

    def describe(self):
        r = self.record
        load = ", ".join(f"{x:.2f}" for x in r.get("load", []))
        return f"{os.path.relpath(self.dir, os.path.dirname(os.path.dirname(self.dir)))} (trained {r.get('date')}, " \
               f"load average {load} at its start)"


def _record(ctx):
    return {"code": code.state(), "section": ctx.section.name,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load": [round(x, 2) for x in os.getloadavg()]}


def read_record(model_dir):
    path = os.path.join(model_dir, TRAINED_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None


def trained(ctx, config, fresh=False, train=None):
    """The finished `Trained` run of ``config`` (its ``runtime.model_dir`` inside ``ctx.runs_root``).

    ``train(config)``: how to train (or finish) it when it is not finished (default
    `tfvrec.runs.ensure_trained`; e.g. ``trainer.train`` to keep the evaluation rows it returns)."""
    from tfvrec.runs import OtherRunError, Run, check_same_run, ensure_trained
    model_dir = config.runtime.model_dir
    if not ctx.owns(model_dir):
        raise ValueError(f"{model_dir}: a benchmark's runs live under {ctx.runs_root} (ctx.run_dir / ctx.shared_dir)")
    redo = "asked for a fresh run" if fresh else None
    if redo is None and os.path.isdir(model_dir):
        record = read_record(model_dir)
        same, why = code.unchanged(record and record.get("code"), ctx.section.measured_paths())
        redo = None if same else why
        if redo is None and Run(model_dir).exists():
            try:
                check_same_run(config, model_dir)
            except OtherRunError as e:
                redo = f"it holds another run (differs in {', '.join(e.changed)})"
    if redo is not None and os.path.isdir(model_dir):
        ctx.log(f"{model_dir}: {redo}; training it again")
        shutil.rmtree(model_dir)
    reused = Run(model_dir).finished and model_dir not in ctx.trained_here
    record = read_record(model_dir)
    if record is None:
        os.makedirs(model_dir, exist_ok=True)
        record = _record(ctx)
        with open(os.path.join(model_dir, TRAINED_FILE), "w") as f:
            json.dump(record, f, indent=1)
    if not Run(model_dir).finished:
        ctx.log(f"training {os.path.relpath(model_dir, ctx.runs_root)}")
        ctx.trained_here.add(model_dir)
    if train is not None and not Run(model_dir).finished:
        train(config)
    run = ensure_trained(config)  # (finished: checked and returned)
    result = Trained(run, config, reused, record)
    if reused and all(t.dir != result.dir for t in ctx.reused):
        ctx.reused.append(result)
    return result
