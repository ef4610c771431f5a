"""``tfvrec tensorboard`` and ``tfvrec report``: their arguments (the work: `tfvrec.inspect.run.tensorboard_cli`,
`tfvrec.inspect.report.run_cli`, named by reference so building the parser imports no TensorFlow)."""


def register_cli(subparsers):
    p = subparsers.add_parser("tensorboard", help="print (or --start) the TensorBoard command for runs",
                              description="TensorBoard of one or more runs: scalars, HParams, images, histograms "
                                          "and the Embedding Projector of the export index's vectors.")
    p.add_argument("--run", required=True, action="append", help="a run directory (repeat to compare runs)")
    p.add_argument("--start", action="store_true", help="start TensorBoard instead of printing the command")
    p.add_argument("--port", type=int, default=6006)
    p.set_defaults(func="tfvrec.inspect.run:tensorboard_cli")
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
    p.set_defaults(func="tfvrec.inspect.report:run_cli")
