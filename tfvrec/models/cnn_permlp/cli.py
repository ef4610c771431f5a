"""``tfvrec tags``: the top-K tags of an image for a user, from a trained CNN-PerMLP run
(`tfvrec.models.cnn_permlp.tagger`). Its arguments; the work is named by reference, so ``tfvrec --help``
imports no TensorFlow."""


def register_cli(subparsers):
    p = subparsers.add_parser("tags", help="top-K tags for an image posted by a user (a CNN-PerMLP run)")
    p.add_argument("--run", required=True, help="run directory of a trained cnn_permlp model")
    p.add_argument("--user", required=True, help="user id as in the data set's users.tsv (an unknown user gets "
                                                 "the non-personalized answer, labelled as such)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", help="image file (JPEG, PNG, GIF, BMP)")
    what.add_argument("--item", help="item id of the data set (its image, or its learned vector when the run "
                                     "has no images)")
    p.add_argument("-k", type=int, default=5, help="number of tags (default 5)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="rank only these tags (repeatable; each must be in the run's vocabulary)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func="tfvrec.models.cnn_permlp.tagger:run_cli")
