#!/usr/bin/env python
"""Benchmark ``tfvrec features`` on the 3,872 MovieLens posters and sanity-check the features.

    python tools/bench_features.py            # converts the model into data_cache/ first if needed

1. Converts EfficientNet-Lite0 (``tools/convert_efficientnet_lite0.py``) into ``--model`` unless
   it is already there.
2. Extracts features for every poster with the same code as
   ``tfvrec features --images POSTERS --hub MODEL --out OUT`` (fresh: the output is deleted
   first), with its progress bar, and measures the throughput.
3. Genre sanity check: for every poster, its 10 nearest neighbours by cosine similarity; the
   share of neighbours that have at least one MovieLens genre in common with the query,
   against the same share for a random other poster (exact expectation over all posters).
4. Writes the figures into the ``features`` section of ``docs/benchmarks.md``.

Outputs (features) go to data_cache/ (git-ignored); nothing else is written into the repository.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import tfvrec  # noqa: E402,F401  (selects tf-keras before TensorFlow is imported)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tfvrec.benchmark_report import publish  # noqa: E402
from tfvrec.data.features import load_features  # noqa: E402
from tfvrec.features import extract  # noqa: E402

POSTERS = os.path.join(os.environ.get("TFVREC_SHARED_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data"),
                       "movielens_posters")
DEFAULT_MODEL = "data_cache/models/efficientnet_lite0"
DEFAULT_OUT = "data_cache/features/movielens_posters_efficientnet_lite0.npz"
EXAMPLES = (1, 1214, 1258, 2571)  # Toy Story, Alien, The Shining, The Matrix
K = 10


def read_movies(path):
    """MovieLens movies: ML-1M ``movies.dat`` (``id::title::genres``, latin-1) or ``movies.csv``."""
    if path.endswith(".dat"):
        movies = pd.read_csv(path, sep="::", engine="python", header=None, names=["movieId", "title", "genres"],
                             dtype=str, encoding="latin-1")
    else:
        movies = pd.read_csv(path, dtype={"movieId": str})
    return movies


def genre_sets(movies_path, item_ids):
    movies = read_movies(movies_path)
    genres = dict(zip(movies["movieId"], movies["genres"]))
    titles = dict(zip(movies["movieId"], movies["title"]))
    sets = [frozenset(g for g in str(genres.get(i, "")).split("|") if g and g != "(no genres listed)")
            for i in item_ids]
    return sets, [titles.get(i, i) for i in item_ids]


def neighbours(vectors, k=K):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def genre_overlap(item_ids, vectors, movies_csv, k=K):
    sets, titles = genre_sets(movies_csv, item_ids)
    keep = np.array([bool(s) for s in sets])
    ids = [i for i, kept in zip(item_ids, keep) if kept]
    sets = [s for s, kept in zip(sets, keep) if kept]
    titles = [t for t, kept in zip(titles, keep) if kept]
    vectors = vectors[keep]
    n = len(ids)
    genres = sorted(set().union(*sets))
    onehot = np.zeros((n, len(genres)), np.float32)
    for row, s in enumerate(sets):
        onehot[row, [genres.index(g) for g in s]] = 1.0
    shares = (onehot @ onehot.T) > 0  # shares[i, j]: at least one genre in common
    size = onehot.sum(1)
    jaccard_all = (onehot @ onehot.T) / (size[:, None] + size[None, :] - onehot @ onehot.T)
    nn = neighbours(vectors, k)
    rows = np.arange(n)[:, None]
    off_diagonal = ~np.eye(n, dtype=bool)
    result = {
        "n": n, "k": k,
        "overlap_nn": float(shares[rows, nn].mean()),
        "overlap_random": float(shares[off_diagonal].mean()),
        "jaccard_nn": float(jaccard_all[rows, nn].mean()),
        "jaccard_random": float(jaccard_all[off_diagonal].mean()),
    }
    rng = np.random.default_rng(0)  # an empirical random-neighbour draw, as a cross-check
    random_nn = (np.arange(n)[:, None] + rng.integers(1, n, size=(n, k))) % n
    result["overlap_random_draw"] = float(shares[rows, random_nn].mean())
    per_genre = []
    for g, genre in enumerate(genres):
        has = onehot[:, g] > 0
        count = int(has.sum())
        if count < 40:
            continue
        precision = float(onehot[nn[has], g].mean())  # P(neighbour has genre | query has genre)
        base = (count - 1) / (n - 1)
        per_genre.append((genre, count, precision, base))
    result["per_genre"] = sorted(per_genre, key=lambda r: -r[2] / r[3])
    examples = []
    for movie in EXAMPLES:
        if str(movie) in ids:
            q = ids.index(str(movie))
            examples.append((titles[q], sorted(sets[q]), [titles[j] for j in nn[q, :5]]))
    result["examples"] = examples
    return result


def markdown(summary, wall, cpu, overlap, args, load_before):
    lines = [
        "## Visual features: `tfvrec features` on the MovieLens posters",
        "",
        f"Command: `python tools/bench_features.py` — runs the equivalent of "
        f"`tfvrec features --images $TFVREC_SHARED_DATA/movielens_posters/posters --hub {args.model} "
        f"--out {args.out} --batch-size {args.batch_size}` from scratch, with EfficientNet-Lite0 "
        "(ImageNet, converted by `tools/convert_efficientnet_lite0.py`; 224x224 centre crops, 1280-d features).",
        "",
        "| images | batch | throughput | extraction time | model load | whole run | bad files |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {summary.extracted:,} | {args.batch_size} | **{summary.images_per_second:.1f} images/s** | "
        f"{summary.seconds:.1f} s | {summary.load_seconds:.1f} s | {wall:.1f} s | {len(summary.bad)} |",
        "",
        f"Throughput = images / extraction-loop time (decode + resize in the tf.data pipeline overlapped with "
        f"the model), on {os.cpu_count()} CPU cores, no GPU. The machine is shared with other jobs (load "
        f"average {load_before[0]:.1f} when the run started), so this is a lower bound: the run used "
        f"{cpu:.0f} CPU-seconds in all ({cpu / max(summary.extracted, 1) * 1000:.0f} ms per image including "
        f"model load), i.e. up to about {os.cpu_count() * max(summary.extracted, 1) / cpu:.0f} images/s if "
        f"it had all {os.cpu_count()} cores to itself.",
        "",
        f"**Genre sanity check** ({overlap['n']:,} posters with MovieLens-1M genres): of the top-{overlap['k']} "
        "cosine neighbours of each poster (self excluded),",
        "",
        "| neighbours | share with >= 1 genre in common | mean genre Jaccard |",
        "| --- | ---: | ---: |",
        f"| top-{overlap['k']} by cosine | **{overlap['overlap_nn']:.3f}** | **{overlap['jaccard_nn']:.3f}** |",
        f"| random other poster (expectation) | {overlap['overlap_random']:.3f} | {overlap['jaccard_random']:.3f} |",
        f"| random draw (seed 0, cross-check) | {overlap['overlap_random_draw']:.3f} | |",
        "",
        f"Per genre (genres with >= 40 posters): P(a top-{overlap['k']} neighbour has the genre | the query has it) "
        "vs the genre's base rate among the other posters.",
        "",
        "| genre | posters | neighbours with it | base rate | lift |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for genre, count, precision, base in overlap["per_genre"]:
        lines.append(f"| {genre} | {count} | {precision:.3f} | {base:.3f} | {precision / base:.2f}x |")
    lines += ["", "Examples (top-5 neighbours):", ""]
    for title, genres, near in overlap["examples"]:
        lines.append(f"- *{title}* ({', '.join(genres)}): " + "; ".join(near))
    return "\n".join(lines)


def main(argv=None):
    text, args = measure(argv)
    publish("features", text, write=not args.no_report)
    return 0


def measure(argv=None):
    """Runs the benchmark (``argv``: this script's flags); returns ``(markdown of the section, parsed flags)``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="converted SavedModel (made if missing)")
    parser.add_argument("--posters", default=os.path.join(POSTERS, "posters"))
    parser.add_argument("--movies", default=os.path.join(POSTERS, "ml1m_movies.dat"),
                        help="MovieLens movies file with genres (the posters are keyed by ML-1M movie id)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="feature file (replaced unless --resume)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resume", action="store_true", help="keep existing features (no fresh timing)")
    parser.add_argument("--no-report", action="store_true", help="print, but do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    if not os.path.exists(os.path.join(args.model, "saved_model.pb")):
        sys.path.insert(0, os.path.join(REPO, "tools"))
        from convert_efficientnet_lite0 import convert
        convert(args.model)
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    # Without --resume, everything is extracted again (an older feature file and its parts are replaced).
    summary = extract.extract_features(args.posters, args.model, args.out, batch_size=args.batch_size,
                                       overwrite=not args.resume)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(summary.describe())
    item_ids, vectors = load_features(summary.out)
    overlap = genre_overlap(item_ids.tolist(), vectors, args.movies)
    return markdown(summary, wall, cpu, overlap, args, load_before), args


if __name__ == "__main__":
    sys.exit(main())
