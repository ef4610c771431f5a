"""The benchmark harness: every figure of docs/benchmarks.md is a `Section` run by ``tools/bench.py``.

    python tools/bench.py --list                            # sections, their make targets, fresh or stale
    python tools/bench.py --sections scann peers_ann        # measure; write their sections of docs/benchmarks.md
    python tools/bench.py --sections peers --quick          # toy sizes: checks the code, prints, writes nothing
    python tools/bench.py --sections scann --quick --report out.md
    python tools/bench.py --stale                           # which figures are older than the code they measure

Why a package under ``tools/`` (on ``sys.path`` through ``tools/bench.py``; the tests in ``tests/tools/``
put ``tools/`` there themselves) rather than in ``tfvrec/``: benchmarks are the project's development
tooling — they read the real data sets, import the peers of the ``bench`` extra, ask git which commit is
measured — and are not installed with the package; what the package itself and its tests share with the
tools (starting ``tfvrec serve`` and reading its ports) lives in the package,
`tfvrec.serving.server.launch`.

Modules: `section` (`Section`, `Context`), `runner` (runs a section: stamp, load averages, what was not
run, publishing), `stamp` (commit, ``-dirty``, date, machine, load averages), `document` (the markers of
docs/benchmarks.md), `fresh` (stale sections), `code` (has the code of a run changed since it was
trained), `runs` (training runs reused through `tfvrec.runs` while their code is unchanged), `peak`
(a compute ceiling measured in the same run), `toy` (toy copies of the real data sets for quick modes),
`paths` (code paths many sections measure), `catalogue` (every section, in run order).

Writing a section
-----------------
A section is a function ``run(ctx) -> markdown`` declared in its tool module's ``SECTIONS`` list, and
the module is named in `catalogue.MODULES`::

    from harness import Section, quick_sets, toy

    def measure(ctx):
        n = ctx.opt("items")                       # ctx.quick: toy sizes; ctx.opt: the section's options
        config = toy.config(ctx, "bpr_posters.yaml", quick_sets() if ctx.quick else [])  # quick: toy data
        config.runtime.model_dir = ctx.run_dir("bpr")   # runs go under the runs root, never elsewhere
        run = ctx.trained(config)                  # trained unless a run of the same code is there
        if not ctx.has("cornac"):                  # a peer of the bench extra: only quick mode may go without
            ctx.skip("cornac BPR", "cornac")
        return "## Title\\n\\n| ... |"              # no load average, date or command: the stamp says them

    SECTIONS = [Section(name="my_section", title="one line for --list", run=measure,
                        paths=("tfvrec/models/bpr", "configs/bpr_posters.yaml"),   # the code it measures
                        options={"items": 100_000}, quick={"items": 2_000},
                        needs=("cornac",), data=("movielens_posters",), make="bench-my")]

Rules: ``paths`` lists everything whose change would change the figures (the defining module is added
by itself), so `fresh` can call the figure stale when any of it changes; every option that sets a size
has a ``quick`` value small enough that ``tests/tools/test_sections.py`` runs the section in a few
seconds (all quick sections together: about 3 minutes on 2 cores); heavy imports (TensorFlow, tfvrec's
models, peers) go inside the functions, so that ``--list`` and ``--stale`` stay instant; a "% of peak"
divides by `peak.gemm_rates` measured in the same run, never by a typed number; the section prints its
progress with ``ctx.log`` and returns only markdown.

Converting a script (e.g. a new ``tools/bench_*.py``)
-----------------------------------------------------
1. Keep its measurement functions; turn ``main()``'s argparse flags into ``options`` (with ``quick``
   values) read through ``ctx.opt``; drop its own ``--no-report``/``--quick`` handling.
2. Replace its writing into docs/benchmarks.md by returning the markdown from ``run(ctx)``, print its
   progress through ``ctx.log``, and drop the load-average, date and "Command:" lines (the stamp carries
   them); a check that fails sets ``ctx.failed`` (``tools/bench.py`` then exits non-zero).
3. Replace run directories under ``runs/`` by ``ctx.run_dir(...)`` (or ``ctx.shared_dir`` for a run another
   section trains too) and "train unless finished" by ``ctx.trained(config)``; data caches by ``ctx.config``.
4. Add ``SECTIONS = [Section(...)]`` with its measured ``paths``, add the module to `catalogue.MODULES`,
   give the Makefile target ``$(PY) tools/bench.py --sections NAME``, and run
   ``pytest tests/tools/test_sections.py -k NAME``: its quick mode is now part of the test suite.
"""
import os
import sys

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
for _path in (REPO, TOOLS):  # tfvrec, and the tool modules that declare sections
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.section import Context, MissingPackage, Section  # noqa: E402


def log(message):
    print(f"[bench] {message}", flush=True)


def quick_sets(steps=20, epochs=1, validation_users=300):
    """Config overrides that make a training run a code check (``--quick``): one short epoch, a small
    validation sample, one evaluation repeat, no TensorBoard summaries."""
    return [f"trainer.epochs={epochs}", f"trainer.steps_per_epoch={steps}",
            f"trainer.validation_max_users={validation_users}", "trainer.tensorboard_summaries=false",
            "eval.repeats=1"]


def keyed(name, sets):
    """``name`` plus a short digest of ``sets`` (config overrides) when there are any: a run directory
    name that changes with the settings."""
    if not sets:
        return name
    import hashlib
    import json
    return f"{name}-{hashlib.sha256(json.dumps(list(sets)).encode()).hexdigest()[:8]}"


def ratio(value, reference):
    """``value / reference`` as table text (— when the reference is 0 or missing)."""
    return f"{value / reference:.3f}" if reference else "—"


__all__ = ["Section", "Context", "MissingPackage", "REPO", "TOOLS", "log", "ratio", "quick_sets", "keyed"]
