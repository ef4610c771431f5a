"""Top-K recommendations from a trained run, for every user–item model: ``tfvrec recommend``.

Python::

    from tfvrec.inference import Recommender
    rec = Recommender("runs/bpr_synthetic")
    rec.recommend("u042", k=10)      # [{"item": "i1337", "score": 3.21}, ...], best first
    rec.score("u042", ["i0001", "i0002"])

Users and items are the data set's own string ids. A user's training items are never
recommended back unless ``exclude_seen=False``. Scores are the model's exact scores
(``score_all``: for HASC too, whose export searches in two stages). A new user (no id
in the run) is cold start: content models (CuratorNet) recommend from liked items or
their content (``tfvrec recommend --items ...``, `tfvrec.models.curatornet.cold_start`).

Command line::

    tfvrec recommend --run DIR --user U [-k 10] [--json]
    tfvrec recommend --run DIR --items ID ... [--embeddings F.npz] [--new-items F]   # cold start
"""
import json
import os

import numpy as np

from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.runs import Run

_LOADED = {}


class Recommender:
    """A trained run, loaded once, that ranks its catalogue for known users by id."""

    def __init__(self, run_dir):
        from tfvrec import registry
        self.run_dir = run_dir
        self.config, self.dataset, self.model = Run(run_dir).load()
        spec = registry.model_spec(self.config.model.name)
        if spec.evaluation:
            raise ConfigError(f"{run_dir}: model '{spec.name}' does not rank a catalogue of items for users; "
                              f"see its documentation (docs/models/{spec.name}.md) for how it is queried")
        self.item_ids = np.asarray(self.dataset.item_ids).astype(str)
        self._seen = self.dataset.train_items_by_user()

    def _user(self, user):
        found = np.flatnonzero(np.asarray(self.dataset.user_ids).astype(str) == str(user))
        if not len(found):
            raise DataError(os.path.join(self.dataset.path, "users.tsv"),
                            f"user {str(user)[:100]!r} is not a user of this run's data set (for a new user, give "
                            "liked items: --items)", key=str(user)[:100])
        return int(found[0])

    def recommend(self, user, k=10, exclude_seen=True):
        """Top-``k`` ``[{"item", "score"}]`` for a known ``user`` (data set id), best first."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError("<k>", f"k must be a positive integer, got {k!r}")
        row = self._user(user)
        scores = np.asarray(self.model.score_all(np.array([row], np.int64))[0], np.float64)
        if exclude_seen:
            scores[self._seen[row]] = -np.inf
        k = min(int(k), int(np.isfinite(scores).sum()))
        top = np.argsort(-scores, kind="stable")[:k]
        return [{"item": str(self.item_ids[n]), "score": float(scores[n])} for n in top]

    def score(self, user, items):
        """The model's scores of catalogue ``items`` (ids) for a known ``user``."""
        rows = self.dataset.item_index([str(i) for i in items], path="<items>")
        scores = self.model.score(np.array([self._user(user)], np.int64), np.asarray(rows, np.int64)[None])
        return [float(s) for s in scores[0]]


def recommender(run_dir):
    """The loaded `Recommender` of ``run_dir`` (loaded once per process)."""
    key = os.path.abspath(run_dir)
    if key not in _LOADED:
        _LOADED[key] = Recommender(run_dir)
    return _LOADED[key]


def _run(args):
    if (args.user is None) == (args.items is None and args.embeddings is None):
        raise ConfigError("tfvrec recommend: give --user (a user of the run), or --items / --embeddings for a "
                          "new user (cold start), not both")
    if args.user is None:  # cold start: the model package's own (content models)
        from tfvrec import config as config_lib
        from tfvrec import registry
        name = config_lib.read_params(args.run).model.name
        spec = registry.model_spec(name)
        if not spec.cold_start:
            raise ConfigError(f"{args.run}: model '{name}' has per-user parameters, so a new user has no vector; "
                              "give --user (a user of the run) or use a content model such as curatornet")
        return registry.resolve(spec.cold_start)(args)
    results = recommender(args.run).recommend(args.user, k=args.k)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"Top {len(results)} of run {args.run} for user {args.user} (training items excluded)")
    width = max([4] + [len(r["item"]) for r in results])
    print(f"{'rank':>4}  {'item':<{width}}  {'score':>10}")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>4}  {r['item']:<{width}}  {r['score']:>10.4f}")


def register_cli(subparsers):
    parser = subparsers.add_parser("recommend", help="top-K for a known user (any model), or for a new user from "
                                                     "liked items (content models), new items included")
    parser.add_argument("--run", required=True, help="run directory of a trained model")
    parser.add_argument("--user", help="a user id of the run's data set (users.tsv)")
    parser.add_argument("--items", nargs="+", metavar="ID", help="cold start: liked item ids (space or comma "
                                                                 "separated)")
    parser.add_argument("--embeddings", metavar="FILE.npz", help="cold start: content vectors of liked items "
                                                                 "(feature file: item, features)")
    parser.add_argument("--new-items", metavar="FILE",
                        help="cold start: new items to rank with the catalogue: a feature file (.npz), or a table "
                             "with columns item, artist for artist one-hot models")
    parser.add_argument("-k", "--k", type=int, default=10, help="number of recommendations (default 10)")
    parser.add_argument("--include-profile", action="store_true", help="cold start: allow the profile's own items")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)
    return parser
