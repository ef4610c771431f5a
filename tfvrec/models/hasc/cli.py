"""``tfvrec explain``: HASC's attention for a (user, image) pair (`tfvrec.models.hasc.explain`).

Its arguments; the work is named by reference, so ``tfvrec --help`` imports no TensorFlow.
"""


def register_cli(subparsers):
    p = subparsers.add_parser("explain", help="explain a HASC score: aspect importance γ, top uploads (α) and "
                                              "followed users (β)")
    p.add_argument("--run", required=True, help="run directory of a trained HASC model")
    p.add_argument("--user", required=True, help="user id as in the data set's users.tsv")
    p.add_argument("--item", required=True, help="image id as in the data set's items.tsv")
    p.add_argument("--top", type=int, default=5, help="uploads / followed users to list (0: all; default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func="tfvrec.models.hasc.explain:run_cli")
