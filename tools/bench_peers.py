"""Benchmark: tfvrec against its peers, side by side in one run (issue 18, "ahead of the peers").

    .venv/bin/python tools/bench_peers.py                       # every section; needs the bench extra
    .venv/bin/python tools/bench_peers.py --sections ann serving --quick --report /tmp/peers.md

One section of docs/benchmarks.md per point of the issue, each with the contenders side by side, a ratio
column (tfvrec / best peer) and the load average at the section's start and end; every figure of a section
comes from this one run. The sections live in ``tools/peers/`` (one module each; its docstring says what
it measures and how):

- ``bpr``      → ``peers_bpr``: BPR-MF vs cornac BPR vs implicit BPR on Flickr F.S (``peers/bpr.py``);
- ``bpr_posters`` → ``peers_bpr_posters``: the same on the MovieLens posters likes, tfvrec on the same grid
  (``peers/bpr_posters.py``);
- ``vbpr``     → ``peers_vbpr``: VBPR vs cornac VBPR on the MovieLens posters (``peers/vbpr.py``);
- ``ann``      → ``peers_ann``: the export's ScaNN vs faiss (IVF-PQ + refine, HNSW) vs hnswlib (``peers/ann.py``);
- ``ann_real`` → ``peers_ann_real``: the same on the trained BPR-MF factors of Flickr F.S (``peers/ann_real.py``);
- ``serving``  → ``peers_serving``: ``tfvrec serve`` under 1/8/32 gRPC clients vs the in-process call
  (``peers/serving.py``);
- ``features`` → ``features``: EfficientNet-Lite0 extraction on the posters (``tools/bench_features.py``).

``--quick`` runs every section at toy sizes to check the code end to end: its figures are not results, so
it never writes docs/benchmarks.md unless ``--report PATH`` names another file.
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers import REPO, load_text, log  # noqa: E402

import tfvrec  # noqa: E402,F401  (tf-keras before TensorFlow)

from tfvrec import benchmark_report  # noqa: E402

# features first: vbpr uses the feature file it writes
SECTIONS = ("features", "bpr", "bpr_posters", "vbpr", "ann", "ann_real", "serving")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the code, measures nothing")
    parser.add_argument("--set", action="append", default=[], help="overrides of tfvrec's BPR-MF config (bpr)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--report", metavar="PATH", help="write the sections into PATH instead of docs/benchmarks.md")
    out.add_argument("--no_report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    path = args.report or benchmark_report.DEFAULT_PATH
    write = not args.no_report and (args.report is not None or not args.quick)
    if args.quick and not args.report and not args.no_report:
        log("--quick without --report: printing only (quick figures never go into docs/benchmarks.md)")
    for name in [s for s in SECTIONS if s in args.sections]:
        module = importlib.import_module(f"peers.{name}")
        log(f"section {module.SECTION}{' (quick)' if args.quick else ''}")
        start = os.getloadavg()
        body = module.run(args)
        body += "\n\n" + load_text(start, os.getloadavg())
        if args.quick:
            body += "\n\n**Quick mode (`--quick`): toy sizes to check the code; these figures are not results.**"
        benchmark_report.publish(module.SECTION, body, write=write, path=path)


if __name__ == "__main__":
    main()
