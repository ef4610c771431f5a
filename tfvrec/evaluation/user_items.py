"""The default evaluation of a run: the user–item protocols against the configured baselines.

A model package may name another evaluation module (``ModelSpec.evaluation``, e.g. a tag
recommender's); every such module has the two functions below:

- `make_validation` → a callable the trainer runs after each epoch (early stopping on
  ``trainer.validation_metric``, the validation protocol on a fixed user subset);
- `evaluate_run` → the final table (the model and ``eval.baselines`` under every
  ``eval.protocols``), printed and written to ``metrics.json`` in the run directory.
"""
import os

import numpy as np
from absl import logging

from tfvrec.evaluation import evaluator, protocols, report


def subset_users(heldout_users, max_users, seed):
    """A fixed random subset of users for per-epoch validation."""
    users = np.asarray(sorted(heldout_users))
    if max_users and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return users


def validation_ks(metric):
    """Cut-offs the validation metric needs: ``hr@10`` → (10,); ``auc`` (no cut-off) → (10,)."""
    return (int(metric.split("@")[-1]),) if "@" in metric else (10,)


def make_validation(config, dataset, model, validation):
    trainer = config.trainer
    heldout = evaluator.heldout_by_user(validation)
    users = set(subset_users(heldout, trainer.validation_max_users, config.runtime.seed))
    heldout = {u: v for u, v in heldout.items() if u in users}
    exclude = evaluator.exclusions(dataset, heldout, judged=trainer.validation_split)
    pool = evaluator.candidate_pool(dataset, trainer.validation_protocol, heldout)

    def evaluate_validation():
        # Deterministic (hash-seeded), so every worker takes the same early-stopping decision.
        return protocols.evaluate(model, heldout, exclude, dataset.num_items, trainer.validation_protocol,
                                  ks=validation_ks(trainer.validation_metric), repeats=1, seed=config.runtime.seed,
                                  candidate_pool=pool)
    return evaluate_validation


def evaluate_run(config, dataset, model, note="", heldout_frame=None, heldout_name=None, protocol_names=None,
                 write=True):
    """Evaluate on the configured split (or an explicit held-out frame); print and write the table
    (``note``: said in its title, e.g. that the run is unfinished)."""
    ev = config.eval
    judged = None  # an explicit held-out frame is judged against every split of the data set
    if heldout_frame is None:
        judged = ev.split if ev.split in dataset.interactions else "validation"
        if judged not in dataset.interactions:
            logging.warning("No '%s' or 'validation' split: nothing to evaluate", ev.split)
            return []
        heldout_frame, heldout_name = dataset.split(judged), f"split '{judged}'"
    heldout = evaluator.heldout_by_user(heldout_frame)
    scorers = {config.model.name: model}
    scorers.update(evaluator.baseline_scorers(ev.baselines, dataset, config, heldout))
    rows = evaluator.evaluate_scorers(scorers, dataset, heldout, protocol_names or ev.protocols, ev.ks,
                                      ev.repeats, ev.seed, judged=judged)
    title = f"{config.model.name} on {dataset.name}, {heldout_name} ({len(heldout)} users)"
    for said in (note, getattr(model, "evaluation_note", "")):  # e.g. what a content model's items are
        if said:
            title += f"; {said}"
    results = [result for _, result in rows]
    labels = [name for name, _ in rows]
    columns = report.table_columns(ev)
    # What content each baseline row uses (e.g. metadata_knn's genres), under the table.
    notes = {name: scorer.evaluation_note for name, scorer in scorers.items()
             if name != config.model.name and getattr(scorer, "evaluation_note", "")}
    table = report.format_table(results, title=title, row_labels=labels, metrics=columns or None)
    print("\n".join([table] + [f"  {note}" for note in notes.values()]), flush=True)
    if write:
        # The run's own figures stay in metrics.json; an explicit held-out file gets a file of its own.
        name = "metrics.json" if judged is not None else f"metrics-{_stem(heldout_name)}.json"
        path = os.path.join(config.runtime.model_dir, name)
        report.write_metrics_json(path, results, extra={"title": title, "rows": labels,
                                                            "model": config.model.name, "dataset": dataset.name,
                                                            "heldout": heldout_name, "row_notes": notes})
        print(f"Wrote {path}", flush=True)
    return rows


def _stem(heldout_name):
    """``path/to/likes_val.tsv`` → ``likes_val`` (a file-name-safe name of an explicit held-out file)."""
    stem = os.path.splitext(os.path.basename(str(heldout_name)))[0]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "heldout"
