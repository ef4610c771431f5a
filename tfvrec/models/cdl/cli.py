"""``tfvrec cdl-split``: CDL's evaluation split (`tfvrec.models.cdl.protocol`).

Its arguments; the work is named by reference, so ``tfvrec --help`` imports no TensorFlow.
"""


def register_cli(subparsers):
    p = subparsers.add_parser("cdl-split", help="copy a data set with CDL's split: users with 40-200 likes hide 20 "
                                                "(evaluate with --protocol candidates:100)")
    p.add_argument("--data", required=True, help="a tfvrec data set directory")
    p.add_argument("--out", required=True, help="where to write the re-split copy")
    p.add_argument("--min_likes", type=int, default=40)
    p.add_argument("--max_likes", type=int, default=200)
    p.add_argument("--hidden", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a data set tfvrec wrote at --out (never another directory, nor --data)")
    p.set_defaults(func="tfvrec.models.cdl.protocol:run_cli")
