"""``tfvrec tensorboard`` and ``tfvrec report``."""
import os
import shutil
import subprocess
import sys

from tfvrec.errors import ConfigError


def _check_run(run_dir):
    if not os.path.exists(os.path.join(run_dir, "params.yaml")):
        raise ConfigError(f"{run_dir}: not a tfvrec run directory (no params.yaml)")


def _tensorboard(args):
    from tfvrec.inspect.run import tensorboard_command
    for run_dir in args.run:
        _check_run(run_dir)
    logdir = os.path.join(args.run[0], "tensorboard") if len(args.run) == 1 else ",".join(
        f"{os.path.basename(os.path.abspath(r))}:{os.path.join(r, 'tensorboard')}" for r in args.run)
    command = tensorboard_command(args.run[0]) if len(args.run) == 1 else f"tensorboard --logdir_spec {logdir}"
    if not args.start:
        print(command)
        return
    executable = shutil.which("tensorboard") or os.path.join(os.path.dirname(sys.executable), "tensorboard")
    flag = "--logdir" if len(args.run) == 1 else "--logdir_spec"
    subprocess.run([executable, flag, logdir, "--port", str(args.port)], check=False)


def _report(args):
    from tfvrec.inspect.report import write_report
    _check_run(args.run)
    if args.users < 1:
        raise ConfigError(f"--users {args.users}: must be ≥ 1")
    if args.k < 1:
        raise ConfigError(f"-k {args.k}: must be ≥ 1")
    summary = write_report(args.run, args.out, users=[args.user] if args.user else None, count=args.users, k=args.k)
    print(f"Wrote {args.out}: {summary['users']} users, top {summary['k']}, {summary['images']} images"
          + ("" if summary["has_images"] else " (the data set has no images: ids and tags shown)"))


def register_cli(subparsers):
    p = subparsers.add_parser("tensorboard", help="print (or --start) the TensorBoard command for runs",
                              description="TensorBoard of one or more runs: scalars, HParams, images, histograms "
                                          "and the Embedding Projector of the export index's vectors.")
    p.add_argument("--run", required=True, action="append", help="a run directory (repeat to compare runs)")
    p.add_argument("--start", action="store_true", help="start TensorBoard instead of printing the command")
    p.add_argument("--port", type=int, default=6006)
    p.set_defaults(func=_tensorboard)
    p = subparsers.add_parser("report", help="a self-contained HTML page of a run's recommendations",
                              description="Per user: history images, top-K recommendations with scores, held-out "
                                          "hits outlined (HASC: explanations; CuratorNet: nearest history item), "
                                          "the results table and HR@K / R@K curves. Works offline.")
    p.add_argument("--run", required=True)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--users", type=int, default=5, help="how many users of the evaluated split (default 5)")
    group.add_argument("--user", help="one user (a data set id)")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(func=_report)
