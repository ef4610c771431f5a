"""``tfvrec tags``: the top-K tags of an image for a user, from a trained CNN-PerMLP run
(`tfvrec.models.cnn_permlp.tagger`). TensorFlow-free at import, so ``tfvrec --help`` stays fast."""
import json


def _run_cli(args):
    from tfvrec.models.cnn_permlp.tagger import Tagger
    if args.image is not None:  # a missing or broken image fails before the run is loaded
        from tfvrec.models.cnn_permlp.tagger import check_image
        check_image(args.image)
    answer = Tagger(args.run).tags(args.user, image=args.image, item=args.item, k=args.k,
                                         only=args.tag or None)
    if args.json:
        print(json.dumps(answer, indent=1))
        return
    print(answer["note"])
    for rank, (tag, score) in enumerate(zip(answer["tags"], answer["scores"]), 1):
        print(f"{rank:3d}  {tag}\t{score:.4f}")


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
    p.set_defaults(func=_run_cli)
