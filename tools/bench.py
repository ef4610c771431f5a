"""The benchmarks' one entry point: run sections of docs/benchmarks.md, list them, find the stale ones.

    python tools/bench.py --list                         # every section: make target, options, fresh or stale
    python tools/bench.py --sections scann serving_load  # measure; write their sections of docs/benchmarks.md
    python tools/bench.py --sections peers               # a group (or a make target's name, e.g. bench-peers)
    python tools/bench.py --sections peers_ann --quick   # toy sizes: checks the code end to end, writes nothing
    python tools/bench.py --sections scann --quick --report out.md
    python tools/bench.py --sections curatornet_posters --option triplets=500000
    python tools/bench.py --stale                        # exit code 1 when a section is older than its code

Every section's quick mode runs in the test suite (tests/tools/test_sections.py). The harness, how to
write a section and how to convert a script: tools/harness/__init__.py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402  (puts the repository and tools/ on sys.path)
from harness import catalogue, document, fresh, runner  # noqa: E402
from harness.section import parse_value  # noqa: E402


def list_sections(path):
    verdicts = {v.name: v for v in fresh.check(path)}
    for name, section in catalogue.sections().items():
        verdict = verdicts.get(name)
        state = "not in the document" if verdict is None else ("STALE" if verdict.stale else "fresh")
        make = f"make {section.make}" if section.make else ""
        print(f"{name:24s} {state:20s} {make:22s} {section.title}")
        if section.options:
            print(f"{'':24s} options: " + ", ".join(f"{k}={v!r} (quick {section.quick[k]!r})" if k in section.quick
                                                    else f"{k}={v!r}" for k, v in section.options.items()))
    others = [v for v in verdicts.values() if v.name not in catalogue.sections()]
    for v in others:
        print(f"{v.name:24s} {'STALE':20s} {'':22s} (in the document; no section in tools/ declares it)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--sections", nargs="+", metavar="NAME", help="sections, groups or make targets ('all')")
    parser.add_argument("--list", action="store_true", help="list the sections and whether their figures are fresh")
    parser.add_argument("--stale", action="store_true", help="check the document: which sections are stale, why")
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the code; never writes "
                                                             "docs/benchmarks.md")
    parser.add_argument("--option", action="append", default=[], metavar="[SECTION:]KEY=VALUE",
                        help="a section option (see --list), for every selected section that has it")
    parser.add_argument("--fresh", action="store_true", help="train every run again (default: reuse runs of "
                                                             "the same measured code)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--report", metavar="PATH", help="write into PATH instead of docs/benchmarks.md")
    out.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--without", nargs="+", default=[], metavar="PACKAGE",
                        help="with --quick: run as if these optional packages (peers) were not installed")
    parser.add_argument("--summary", metavar="PATH", help="write each section's outcome, times and what did not run "
                                                           "as JSON (the tests read it)")
    parser.add_argument("--runs-root", help="where runs and scratch go (default runs/, quick: runs/quick/)")
    parser.add_argument("--cache-dir", help="the data sets' import cache (default data_cache/)")
    args = parser.parse_args(argv)
    path = args.report or document.DEFAULT_PATH
    if args.list:
        list_sections(path)
        return 0
    if args.stale:
        verdicts = sorted(fresh.check(path), key=lambda v: not v.stale)
        for v in verdicts:
            print(v)
        stale = [v for v in verdicts if v.stale]
        print(f"{len(stale)} of {len(verdicts)} sections of {path} are stale")
        return 1 if stale else 0
    if not args.sections:
        parser.error("name --sections (or --list, --stale)")
    try:
        sections = catalogue.select(args.sections)
    except KeyError as e:
        parser.error(e.args[0])
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--option {item}: expected KEY=VALUE")
        options[key] = parse_value(value)
    if args.without and not args.quick:
        parser.error("--without is for --quick runs (a full run needs its peers)")
    known = {k for s in sections for k in s.options}
    for key in options:
        if ":" not in key and key not in known:
            parser.error(f"--option {key}: no selected section has that option (see --list)")
    if args.quick and not args.report and not args.no_report:
        harness.log("--quick: printing only (quick figures never go into docs/benchmarks.md; --report PATH "
                    "writes them elsewhere)")
    _, failures = runner.run_sections(sections, quick=args.quick, options=options, report=args.report,
                                      write=not args.no_report, runs_root=args.runs_root,
                                      cache_dir=args.cache_dir, fresh=args.fresh, without=args.without,
                                      summary=args.summary)
    for name, why in failures:
        harness.log(f"FAILED {name}: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
