"""Section ``chaos_train``: ``tfvrec train`` killed at random moments — 50 SIGKILLs and 5 SIGTERMs on one run
(issue 16).

    python tools/bench.py --sections chaos_train [--option kills=5 --option terms=1]

Trains a BPR-MF run on a small synthetic world once without interruption (the reference),
then trains the same config again in a new run directory, killing the trainer at random
moments of its training: after each start, once it has printed its first epoch line, a
SIGKILL (or, ``terms`` times, a SIGTERM) comes after a random delay, and the same command is
run again, until the run finishes. Kill moments are random (seeded), which is the point here;
the deterministic kill windows are the tests' (``tests/training/test_resume.py``).

Afterwards the killed run must equal the reference: the same history (one entry per
epoch), one checkpoint per epoch, the same final weights and optimizer state, the same
number of batches taken from the input; every SIGTERM answered by exit code 143. A
mismatch fails the section (``ctx.failed``: ``tools/bench.py`` exits non-zero).
"""
import os
import random
import re
import select
import signal
import subprocess
import sys
import time

from harness import REPO, Section
from harness import paths as P

PREEMPTED = 143
TITLE = "Chaos: `tfvrec train` killed at random moments, resumed, equal to an uninterrupted run"


class TrainerError(RuntimeError):
    """A ``tfvrec train`` start that failed in a way no signal explains (the message ends with its log)."""


def log_tail(path, chars=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""


def command(model_dir, cache_dir, ctx):
    sets = ["data.source=synthetic", f"data.cache_dir={cache_dir}",
            f"data.synthetic.num_users={ctx.opt('users')}", f"data.synthetic.num_items={ctx.opt('items')}",
            "data.synthetic.num_creators=60", f"runtime.model_dir={model_dir}",
            "runtime.distribution_strategy=default", f"trainer.epochs={ctx.opt('epochs')}",
            f"trainer.steps_per_epoch={ctx.opt('steps')}", "trainer.batch_size=128",
            f"trainer.checkpoint_every_steps={ctx.opt('every')}", "trainer.keep_checkpoints=0",
            "trainer.early_stopping_patience=0", "trainer.learning_rate_decay=0.95", "trainer.verbose=2",
            "model.bpr.embedding_dim=16", "eval.protocols=[sampled:100]", "eval.repeats=1", "eval.baselines=[]"]
    return [sys.executable, "-m", "tfvrec", "train", "--config", "bpr_synthetic",
            *[a for s in sets for a in ("--set", s)]]


EPOCH_LINE = re.compile(r"^Epoch (\d+)/(\d+)")
RESULT_LINE = re.compile(r"^\s*\d+/\d+ - ")  # Keras (verbose=2): an epoch's steps, losses and validation figures


def run_once(cmd, log_path, kill=None, delay=0.0):
    """Start ``cmd``; ``kill`` a signal sent ``delay`` s after its first "Epoch" line, if its training still
    runs then (until the result line of its last epoch). Returns (exit code, seconds of training: from the
    first "Epoch" line to the last epoch's result line, or to the exit or the kill; whether the signal was
    sent). Its stdout and stderr go to ``log_path``."""
    with open(log_path, "a") as log:
        log.write(f"--- {' '.join(cmd[1:4])} (signal {signal.Signals(kill).name if kill else 'none'} "
                  f"{delay:.2f} s after the first epoch line)\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        started = ended = None
        sent = last_epoch = False
        while True:
            if started is not None and ended is None and kill is not None and not sent and \
                    time.time() - started >= delay:
                proc.send_signal(kill)
                sent, ended = True, time.time()
            ready, _, _ = select.select([proc.stdout], [], [], 0.01)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                epoch = EPOCH_LINE.match(line)
                if epoch:
                    started = started or time.time()
                    last_epoch = epoch.group(1) == epoch.group(2)
                elif last_epoch and ended is None and RESULT_LINE.match(line):
                    ended = time.time()  # training is over: evaluation, export of the projector
            elif proc.poll() is not None:
                break
        proc.wait()
        log.flush()
    return proc.returncode, ((ended or time.time()) - started) if started else 0.0, sent


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


def chaos(ctx, work):
    """The reference run, then the killed one; the figures of both."""
    cache = os.path.join(work, "cache")
    log_path = os.path.join(work, "train.log")
    reference_dir, chaos_dir = os.path.join(work, "reference"), os.path.join(work, "chaos")

    code, reference_seconds, _ = run_once(command(reference_dir, cache, ctx), log_path)
    if code != 0:
        raise TrainerError(f"the reference run failed (exit code {code}); its log:\n{log_tail(log_path)}")
    ctx.log(f"reference run: {reference_seconds:.1f} s of training (first epoch line to the last epoch's result)")

    rng = random.Random(ctx.opt("seed"))
    signals = [signal.SIGKILL] * ctx.opt("kills") + [signal.SIGTERM] * ctx.opt("terms")
    rng.shuffle(signals)
    # Spread the kills over the run: on average a kill every spread × (training time / signals) seconds of training
    # (a start resumes where the last one recorded, so it trains less than the whole run).
    mean_delay = ctx.opt("spread") * reference_seconds / max(1, len(signals))
    starts, delivered, exits = 0, {"SIGKILL": 0, "SIGTERM": 0}, {}
    cmd = command(chaos_dir, cache, ctx)
    finished = False
    while not finished:
        kill = signals.pop() if signals else None
        delay = rng.uniform(0, 2 * mean_delay) if kill is not None else 0.0
        code, _, sent = run_once(cmd, log_path, kill=kill, delay=delay)
        starts += 1
        exits[code] = exits.get(code, 0) + 1
        if kill is not None and sent and code != 0:
            delivered[signal.Signals(kill).name] += 1
        elif kill is not None:
            signals.append(kill)  # the run ended before the signal: try it on the next start
        if code == 0:  # finished (with kills left, they cannot land anymore)
            finished = True
        elif code not in (-signal.SIGKILL, PREEMPTED):
            raise TrainerError(f"start {starts}: unexpected exit code {code}; the log:\n{log_tail(log_path)}")
        ctx.log(f"start {starts}: {signal.Signals(kill).name if kill else 'no signal'} after {delay:.2f} s -> exit "
                f"{code}")
    return outcome(reference_dir), outcome(chaos_dir), starts, delivered, exits


def run(ctx):
    import numpy as np
    with ctx.scratch("work") as work:
        (ref_state, ref_listed, ref_final), (state, listed, final), starts, delivered, exits = chaos(ctx, work)

    def strip(history):
        return [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in history]
    same_history = strip(state.history) == strip(ref_state.history)
    lost = max(0, len(ref_state.history) - len(state.history))
    repeated = max(0, len(state.history) - len(ref_state.history))
    differing = [k for k in ref_final if "save_counter" not in k and not np.array_equal(ref_final[k], final.get(k))]
    max_diff = max((float(np.abs(ref_final[k] - final[k]).max()) for k in differing
                    if k in final and np.shape(final[k]) == np.shape(ref_final[k])), default=0.0)
    one_per_epoch = listed == [f"ckpt-{n}" for n in range(1, state.completed_epochs + 1)] == ref_listed
    terms_ok = exits.get(PREEMPTED, 0) == delivered["SIGTERM"]
    planned = f"{ctx.opt('kills')} / {ctx.opt('terms')}"
    rows = [
        ("kills delivered during training (SIGKILL / SIGTERM)",
         f"{delivered['SIGKILL']} / {delivered['SIGTERM']} (of {planned} drawn)"),
        ("trainer starts", str(starts)),
        ("SIGTERMs answered by saving and exit 143", f"{exits.get(PREEMPTED, 0)} of {delivered['SIGTERM']}"),
        ("epochs lost / repeated in the history", f"{lost} / {repeated}"),
        ("history equal to the uninterrupted run's (less wall times)", "yes" if same_history else "NO"),
        ("one checkpoint per epoch (ckpt-1 … ckpt-N, each once)", "yes" if one_per_epoch else "NO"),
        ("final weights and optimizer state equal to the uninterrupted run's",
         "yes (bit for bit)" if not differing else f"NO ({len(differing)} tensors, max |diff| {max_diff:.3g})"),
        ("batches taken from the input (killed run / reference)",
         f"{state.batches_consumed} / {ref_state.batches_consumed}"),
    ]
    ok = same_history and one_per_epoch and not differing and terms_ok and not lost and not repeated
    if not ok:
        broken = [name for name, good in (("history", same_history), ("checkpoints", one_per_epoch),
                                          ("final state", not differing), ("SIGTERM exits", terms_ok),
                                          ("epochs lost or repeated", not lost and not repeated)) if not good]
        ctx.failed = f"the killed run differs from the uninterrupted one: {', '.join(broken)}"
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    result = "**the killed run is the uninterrupted run**" if ok else "**MISMATCH** (see the rows above)"
    signals = ctx.opt("kills") + ctx.opt("terms")
    return "\n".join([
        f"## Chaos: `tfvrec train` killed {delivered['SIGKILL'] + delivered['SIGTERM']} times", "",
        f"BPR-MF on a synthetic world ({ctx.opt('users')} users, {ctx.opt('items')} items), {ctx.opt('epochs')} "
        f"epochs × {ctx.opt('steps')} steps, a run-state record every {ctx.opt('every')} steps. One uninterrupted "
        "reference run, then the same config in a new run directory killed at random moments of its training "
        f"({planned} SIGKILLs / SIGTERMs drawn, each after a random delay from the start's first epoch line: "
        f"uniform, with a mean of {ctx.opt('spread'):g} × the reference's training time / {signals}, seed "
        f"{ctx.opt('seed')}; a signal whose moment comes after the start's last epoch is not sent but tried on the "
        "next start) and started again with the same command until it finished.", "",
        "| | |", "| --- | --- |", table, "",
        f"Result: {result}. A resumed run skips the batches already trained on (the input is a pure function of "
        "the seed), so no batch is trained twice or skipped; the kill windows of the issue are exercised "
        "deterministically by `tests/training/test_resume.py`."])

SECTIONS = [Section(
    name="chaos_train", title=TITLE, run=run, make="chaos-train",
    paths=P.TRAINING + P.EVALUATION + P.model("bpr") + P.config("bpr_synthetic.yaml")
    + ("tfvrec/cli.py", "tfvrec/commands.py", "tfvrec/__main__.py"),
    options={"kills": 50, "terms": 5, "epochs": 8, "steps": 150, "every": 20, "users": 400, "items": 800,
             "spread": 1.6, "seed": 16},
    quick={"kills": 2, "terms": 1, "epochs": 2, "steps": 60, "every": 10, "spread": 0.8})]
