"""Chaos test of ``tfvrec train``: 50 random SIGKILLs and 5 SIGTERMs on one synthetic run (issue 16).

Trains a BPR-MF run on a small synthetic world once without interruption (the reference),
then trains the same config again in a new run directory, killing the trainer at random
moments of its training: after each start, once it has printed its first epoch line, a
SIGKILL (or, 5 times, a SIGTERM) comes after a random delay, and the same command is run
again, until the run finishes. Kill moments are random (seeded), which is the point here;
the deterministic kill windows are the tests' (``tests/training/test_resume.py``).

Afterwards the killed run must equal the reference: the same history (one entry per
epoch), one checkpoint per epoch, the same final weights and optimizer state, the same
number of batches taken from the input. Writes its figures to ``docs/benchmarks.md``
(section ``chaos_train``).

    .venv/bin/python tools/chaos_train.py                 # 50 + 5 kills, writes docs/benchmarks.md
    .venv/bin/python tools/chaos_train.py --kills 5 --terms 1 --no-write
"""
import argparse
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfvrec import benchmark_report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "chaos_train"
PREEMPTED = 143


def command(model_dir, cache_dir, args):
    sets = ["data.source=synthetic", f"data.cache_dir={cache_dir}", "data.synthetic.num_users=400",
            "data.synthetic.num_items=800", "data.synthetic.num_creators=60", f"runtime.model_dir={model_dir}",
            "runtime.distribution_strategy=default", f"trainer.epochs={args.epochs}",
            f"trainer.steps_per_epoch={args.steps}", "trainer.batch_size=128",
            f"trainer.checkpoint_every_steps={args.every}", "trainer.keep_checkpoints=0",
            "trainer.early_stopping_patience=0", "trainer.learning_rate_decay=0.95", "trainer.verbose=2",
            "model.bpr.embedding_dim=16", "eval.protocols=[sampled:100]", "eval.repeats=1", "eval.baselines=[]"]
    return [sys.executable, "-m", "tfvrec", "train", "--config", "bpr_synthetic",
            *[a for s in sets for a in ("--set", s)]]


def run_once(cmd, kill=None, delay=0.0, log=None):
    """Start ``cmd``; ``kill`` a signal sent ``delay`` s after the first "Epoch" line. Returns
    (exit code, seconds from that line to the exit or the kill, whether the signal was sent)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True,
                            bufsize=1)
    started, sent = None, False
    while True:
        if started is not None and kill is not None and not sent and time.time() - started >= delay:
            proc.send_signal(kill)
            sent = True
        ready, _, _ = select.select([proc.stdout], [], [], 0.01)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if started is None and line.startswith("Epoch "):
                started = time.time()
        elif proc.poll() is not None:
            break
    proc.wait()
    return proc.returncode, (time.time() - started) if started else 0.0, sent


def checkpoint_tensors(prefix):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k}


def outcome(model_dir):
    import tensorflow as tf
    from tfvrec.runs import state as runstate
    state = runstate.read_state(model_dir)
    listed = [os.path.basename(p) for p in
              tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints")).all_model_checkpoint_paths]
    _, prefix = runstate.StateStore(model_dir).load()
    return state, listed, checkpoint_tensors(prefix)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--terms", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--work", default="", help="working directory (default: a new temporary one)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import numpy as np
    work = args.work or tempfile.mkdtemp(prefix="tfvrec-chaos-train-")
    os.makedirs(work, exist_ok=True)
    cache = os.path.join(work, "cache")
    log = open(os.path.join(work, "train.log"), "a")
    reference_dir, chaos_dir = os.path.join(work, "reference"), os.path.join(work, "chaos")
    for path in (reference_dir, chaos_dir):
        shutil.rmtree(path, ignore_errors=True)

    began = time.time()
    code, reference_seconds, _ = run_once(command(reference_dir, cache, args), log=log)
    assert code == 0, f"the reference run failed ({code}); see {log.name}"
    print(f"reference run: {reference_seconds:.1f} s of training", flush=True)

    rng = random.Random(args.seed)
    signals = [signal.SIGKILL] * args.kills + [signal.SIGTERM] * args.terms
    rng.shuffle(signals)
    # Spread the kills over the run: on average a kill every (training time / kills) seconds of training.
    mean_delay = 1.6 * reference_seconds / max(1, len(signals))
    starts, delivered, exits = 0, {"SIGKILL": 0, "SIGTERM": 0}, {}
    cmd = command(chaos_dir, cache, args)
    finished = False
    while not finished:
        kill = signals.pop() if signals else None
        delay = rng.uniform(0, 2 * mean_delay) if kill is not None else 0.0
        code, _, sent = run_once(cmd, kill=kill, delay=delay, log=log)
        starts += 1
        exits[code] = exits.get(code, 0) + 1
        if kill is not None and sent and code != 0:
            delivered[signal.Signals(kill).name] += 1
        elif kill is not None:
            signals.append(kill)  # the run ended before the signal: try it on the next start
        if code == 0 and not signals:
            finished = True
        elif code == 0:  # finished with kills left: they cannot land anymore
            finished = True
        elif code not in (-signal.SIGKILL, PREEMPTED):
            raise SystemExit(f"unexpected exit code {code} (see {log.name})")
        print(f"start {starts}: {signal.Signals(kill).name if kill else 'no signal'} after {delay:.2f}s -> exit "
              f"{code}", flush=True)
    seconds = time.time() - began

    ref_state, ref_listed, ref_final = outcome(reference_dir)
    state, listed, final = outcome(chaos_dir)

    def strip(history):
        return [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in history]
    same_history = strip(state.history) == strip(ref_state.history)
    lost = max(0, len(ref_state.history) - len(state.history))
    repeated = max(0, len(state.history) - len(ref_state.history))
    differing = [k for k in ref_final if "save_counter" not in k and not np.array_equal(ref_final[k], final[k])]
    max_diff = max((float(np.abs(ref_final[k] - final[k]).max()) for k in differing), default=0.0)
    one_per_epoch = listed == [f"ckpt-{n}" for n in range(1, state.completed_epochs + 1)] == ref_listed
    terms_ok = exits.get(PREEMPTED, 0) == delivered["SIGTERM"]
    rows = [
        ("kills delivered during training (SIGKILL / SIGTERM)", f"{delivered['SIGKILL']} / {delivered['SIGTERM']}"),
        ("trainer starts", str(starts)),
        ("SIGTERMs answered by saving and exit 143", f"{exits.get(PREEMPTED, 0)} of {delivered['SIGTERM']}"),
        ("epochs lost / repeated in the history", f"{lost} / {repeated}"),
        ("history equal to the uninterrupted run's (less wall times)", "yes" if same_history else "NO"),
        ("one checkpoint per epoch (ckpt-1 … ckpt-N, each once)", "yes" if one_per_epoch else "NO"),
        ("final weights and optimizer state equal to the uninterrupted run's",
         "yes (bit for bit)" if not differing else f"NO ({len(differing)} tensors, max |diff| {max_diff:.3g})"),
        ("batches taken from the input (killed run / reference)", f"{state.batches_consumed} / "
                                                                  f"{ref_state.batches_consumed}"),
    ]
    ok = same_history and one_per_epoch and not differing and terms_ok and not lost and not repeated
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    markdown = f"""## Chaos: `tfvrec train` killed {delivered['SIGKILL'] + delivered['SIGTERM']} times

Command: `python tools/chaos_train.py --kills {args.kills} --terms {args.terms}` — BPR-MF on a synthetic world
(400 users, 800 items), {args.epochs} epochs × {args.steps} steps, a run-state record every {args.every} steps.
One uninterrupted reference run, then the same config in a new run directory killed at random moments of its
training (a random delay after its first epoch line, seed {args.seed}) and started again with the same command
until it finished. {seconds / 60:.1f} minutes in all.

| | |
| --- | --- |
{table}

Result: {"**the killed run is the uninterrupted run**" if ok else "**MISMATCH** (see the rows above)"}. A resumed run
skips the batches already trained on (the input is a pure function of the seed), so no batch is trained twice or
skipped; the kill windows of the issue are exercised deterministically by `tests/training/test_resume.py`."""
    benchmark_report.publish(SECTION, markdown, write=not args.no_write)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
