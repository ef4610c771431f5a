"""Run sections: the stamp around each, what did not run and which runs were reused said under it, publishing.

`tools/bench.py` is its command line; `tests/tools/test_sections.py` calls `run_section` directly.
"""
import dataclasses
import json
import os
import resource
import time
import traceback

from harness import REPO, log
from harness import document
from harness.section import Context, MissingPackage
from harness.stamp import Stamp


@dataclasses.dataclass
class Result:
    section: object
    markdown: str
    stamp: Stamp
    context: Context


def command_text(section, quick, options):
    parts = ["python tools/bench.py --sections", section.name] + (["--quick"] if quick else [])
    parts += [f"--option {k}={v!r}" if isinstance(v, str) else f"--option {k}={v}" for k, v in options.items()]
    return " ".join(parts)


def run_section(section, quick=False, options=None, runs_root=None, cache_dir=None, fresh=False, echo=print,
                without=()):
    """Run ``section``; its `Result` (markdown with the harness's notes, and the closed stamp). ``without``:
    optional packages to run without, as if they were not installed (quick mode)."""
    options = dict(options or {})
    ctx = Context(section, quick=quick, options=options, runs_root=runs_root, cache_dir=cache_dir, log=echo,
                  without=without)
    ctx.fresh = fresh
    if ctx.missing and not quick:
        raise MissingPackage(f"section {section.name} needs {', '.join(ctx.missing)} (the bench extra of setup.py); "
                             "install them, or run it with --quick to check tfvrec's side alone")
    stamp = Stamp.capture(REPO, section.measured_paths(), command_text(section, quick, options), quick=quick)
    log(f"section {section.name}{' (quick)' if quick else ''}: {section.title}")
    markdown = section.run(ctx).rstrip()
    stamp.finish()
    notes = []
    if ctx.not_run:
        notes.append("**Not run** (quick mode, optional packages missing): "
                     + "; ".join(f"{what} ({why})" for what, why in ctx.not_run) + ".")
    if ctx.reused:
        notes.append("Runs reused, trained earlier from the same measured code (their training times are "
                     "of then): " + "; ".join(t.describe() for t in ctx.reused) + ".")
    if notes:
        markdown += "\n\n" + "\n\n".join(notes)
    return Result(section, markdown, stamp, ctx)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sections(sections, quick=False, options=None, report=None, write=True, runs_root=None, cache_dir=None,
                 fresh=False, without=(), summary=None):
    """Run ``sections`` in order; publish each into ``report`` (default docs/benchmarks.md; never with
    ``quick`` unless ``report`` names another file). Returns ``(results, failures)``; ``summary``: a JSON
    file recording each section's outcome, times (wall, CPU of this process and of its children: servers,
    subprocesses) and what did not run."""
    path = report or document.DEFAULT_PATH
    if quick and os.path.abspath(path) == os.path.abspath(document.DEFAULT_PATH):
        write = False  # quick figures never go into docs/benchmarks.md
    results, failures, record = [], [], {}
    for section in sections:
        mine = {k.split(":", 1)[-1]: v for k, v in (options or {}).items()
                if (k.split(":", 1)[0] == section.name if ":" in k else k in section.options)}
        start, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        entry = record[section.name] = {"status": "failed"}
        try:
            result = run_section(section, quick, mine, runs_root, cache_dir, fresh, without=without)
        except MissingPackage as e:
            log(str(e))
            failures.append((section.name, str(e)))
            entry["error"] = str(e)
        except Exception as e:  # one broken section does not stop the others; the exit code says it
            traceback.print_exc()
            failures.append((section.name, f"{type(e).__name__}: {e}"))
            entry["error"] = traceback.format_exc()[-4000:]
        else:
            print(result.markdown + "\n\n" + result.stamp.line(), flush=True)
            if write:
                document.write_section(section.name, result.markdown, result.stamp, path)
                log(f"wrote section {section.name} of {path}")
            results.append(result)
            entry.update(status="ok", not_run=[list(x) for x in result.context.not_run])
            if result.context.failed:
                failures.append((section.name, result.context.failed))
                entry.update(status="failed", error=result.context.failed)
        entry.update(seconds=round(time.perf_counter() - start, 1), cpu_seconds=round(time.process_time() - cpu, 1),
                     children_cpu_seconds=round(_children_cpu() - children, 1))
        if summary:
            with open(summary + ".tmp", "w") as f:
                json.dump(record, f, indent=1)
            os.replace(summary + ".tmp", summary)
    return results, failures
