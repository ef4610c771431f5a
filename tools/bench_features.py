"""Section ``features``: ``tfvrec features`` on the 3,872 MovieLens posters, and a sanity check of the features.

1. Converts EfficientNet-Lite0 (``tools/convert_efficientnet_lite0.py``) into the data cache unless it
   is already there (`ensure_model`).
2. Extracts features for every poster with the same code as
   ``tfvrec features --images POSTERS --hub MODEL --out OUT`` (from scratch: an older feature file is
   replaced), with its progress bar, and measures the throughput.
3. Genre sanity check: for every poster, its 10 nearest neighbours by cosine similarity; the
   share of neighbours that have at least one MovieLens genre in common with the query,
   against the same share for a random other poster (exact expectation over all posters).

The feature file is what the posters' sections feed their models (`posters_config`: CuratorNet, VBPR,
the retrieval objective); in quick mode the first ``limit`` posters only, and those sections run on a
toy copy of the posters data set restricted to them. Outputs go to the data cache (``data_cache/``,
git-ignored).

    python tools/bench.py --sections features
"""
import os
import time

import numpy as np

from harness import Section
from harness import paths as P
from harness import toy

POSTERS = os.path.join("${TFVREC_SHARED_DATA}", "movielens_posters")
MODEL = os.path.join("models", "efficientnet_lite0")  # under the data cache
FEATURES = os.path.join("features", "movielens_posters_efficientnet_lite0.npz")  # under the data cache
EXAMPLES = (1, 1214, 1258, 2571)  # Toy Story, Alien, The Shining, The Matrix
K = 10


def posters_dir(*parts):
    from tfvrec.data.resolve import expand_path
    return os.path.join(expand_path(POSTERS), *parts)


def model_dir(ctx):
    return os.path.join(ctx.cache_dir, MODEL)


def features_file(ctx):
    return os.path.join(ctx.cache_dir, FEATURES if not ctx.quick else FEATURES.replace(".npz", "_quick.npz"))


def ensure_model(ctx):
    """The converted EfficientNet-Lite0 (converted into the data cache once)."""
    path = model_dir(ctx)
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        from convert_efficientnet_lite0 import convert
        convert(path, check=not ctx.quick, log=ctx.log)
    return path


def images(ctx, limit=None):
    """The posters folder, or (``limit``) a folder of links to the first ``limit`` posters by movie id."""
    folder = posters_dir("posters")
    if not limit:
        return folder
    names = sorted(os.listdir(folder), key=lambda n: (len(n), n))[:limit]
    out = os.path.join(ctx.cache_dir, f"posters-first-{limit}")
    if not os.path.isdir(out):
        os.makedirs(out + ".tmp", exist_ok=True)
        for name in names:
            link = os.path.join(out + ".tmp", name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(folder, name), link)
        os.replace(out + ".tmp", out)
    return out


def extract(ctx, limit, batch_size):
    """Extract the posters' features (afresh) into `features_file`: ``(summary, wall s, CPU s, load)``."""
    from tfvrec.features import extract as extract_lib
    model = ensure_model(ctx)
    out = features_file(ctx)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    summary = extract_lib.extract_features(images(ctx, limit), model, out, batch_size=batch_size, overwrite=True,
                                           progress=not ctx.quick, log=ctx.log)
    return summary, time.perf_counter() - start, time.process_time() - cpu_start, load_before


def ensure_features(ctx):
    """The posters' feature file, extracted unless there (quick mode: the first ``limit`` posters)."""
    path = features_file(ctx)
    if not os.path.exists(path):
        extract(ctx, QUICK_LIMIT if ctx.quick else 0, 32)
    return path


def posters_config(ctx, path, sets=(), users=None):
    """``ctx.config`` of a posters config whose data set holds the posters' EfficientNet-Lite0 features (the
    feature set ``data.features`` names, from `ensure_features`); in quick mode on a toy copy of the data set
    with the posters that have features (``users``: of the first users only)."""
    from tfvrec.data import features as features_lib
    from tfvrec.data.dataset import load_dataset
    from tfvrec.data.resolve import dataset_path
    source = ensure_features(ctx)
    ids, vectors = features_lib.load_features(source)
    config = ctx.config(path, sets)
    if ctx.quick:
        config = ctx.config(path, list(sets) + toy.subset(ctx, config, users, items=ids.tolist()))
    folder = dataset_path(config.data)
    target = os.path.join(folder, "features", f"{config.data.features}.npz")
    if not os.path.exists(target) or os.path.getmtime(target) < os.path.getmtime(source):
        dataset = load_dataset(folder)
        features_lib.save_features(target, dataset.item_ids,
                                   features_lib.align_features(source, ids, vectors, dataset.item_ids))
        ctx.log(f"wrote {target} from {source}")
    return config


def read_movies(path):
    """MovieLens movies: ML-1M ``movies.dat`` (``id::title::genres``, latin-1) or ``movies.csv``."""
    import pandas as pd
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


def markdown(summary, wall, cpu, overlap, ctx, load_before):
    lines = [
        "## Visual features: `tfvrec features` on the MovieLens posters",
        "",
        "The equivalent of `tfvrec features --images $TFVREC_SHARED_DATA/movielens_posters/posters --hub "
        f"data_cache/{MODEL} --out data_cache/{FEATURES} --batch-size {ctx.opt('batch_size')}` from scratch, with "
        "EfficientNet-Lite0 (ImageNet, converted by `tools/convert_efficientnet_lite0.py`; 224x224 centre crops, "
        f"{summary.dim}-d features).",
        "",
        "| images | batch | throughput | extraction time | model load | whole run | bad files |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {summary.extracted:,} | {ctx.opt('batch_size')} | **{summary.images_per_second:.1f} images/s** | "
        f"{summary.seconds:.1f} s | {summary.load_seconds:.1f} s | {wall:.1f} s | {len(summary.bad)} |",
        "",
        f"Throughput = images / extraction-loop time (decode + resize in the tf.data pipeline overlapped with "
        f"the model), on {os.cpu_count()} CPU cores, no GPU. The run used "
        f"{cpu:.0f} CPU-seconds in all ({cpu / max(summary.extracted, 1) * 1000:.0f} ms per image including "
        f"model load), i.e. up to about {os.cpu_count() * max(summary.extracted, 1) / max(cpu, 1e-9):.0f} images/s "
        f"if it had all {os.cpu_count()} cores to itself (load average {load_before[0]:.1f} when it started).",
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


def run(ctx):
    from tfvrec.data.features import load_features
    summary, wall, cpu, load_before = extract(ctx, ctx.opt("limit"), ctx.opt("batch_size"))
    ctx.log(summary.describe())
    item_ids, vectors = load_features(summary.out)
    overlap = genre_overlap(item_ids.tolist(), vectors, posters_dir("ml1m_movies.dat"))
    return markdown(summary, wall, cpu, overlap, ctx, load_before)


QUICK_LIMIT = 160  # posters extracted in quick mode (and the items of the posters sections' toy data set)
SECTIONS = [Section(
    name="features", title="Visual features: tfvrec features (EfficientNet-Lite0) on the MovieLens posters",
    run=run, paths=P.FEATURES, data=("movielens_posters",), group="peers", make="bench-features",
    options={"batch_size": 32, "limit": 0}, quick={"limit": QUICK_LIMIT})]
