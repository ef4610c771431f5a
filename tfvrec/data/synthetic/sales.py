"""One-of-a-kind sales (``one_of_a_kind``): every item is sold at most once, in time order.

The premise of CuratorNet's art market (UGallery): each work is unique, so once a user has
bought it nobody else can, and whatever a user buys next is a work nobody bought before. Users
keep their tastes (topics, style, favourite artists), so their next purchase resembles their
past ones, by content — never by an item anybody interacted with.

The market: each user's purchases are cut into baskets (sizes as in the default world,
1 + Poisson(mean_basket_size − 1), at least three baskets when there are three purchases: a
train, a validation and a test basket), stamped with times as `timestamp_baskets` does (a
random start, then geometric gaps), and all baskets of all users are bought in time order, so
users of similar taste compete for the same works. A basket's first item is a draw from the
user's like distribution over the unsold items (Gumbel-max); its other items come from the same
topic, by the same keys, favouring the first item's artist — the default world's basket rule.
A basket that finds nothing left to buy is not bought.
"""
import numpy as np
import pandas as pd


def sell_once(config, wants, counts, items, topic_items, rng, time_rng):
    """Sell each item at most once. ``wants``: per user, their like distribution over the items
    (0: never bought); ``counts``: per user, how many items they buy. Returns ``(baskets, frame)``
    as `tfvrec.data.synthetic.likes.make_likes` does, baskets in time order."""
    sizes = [_basket_sizes(config, int(count), rng) for count in counts]
    starts = np.cumsum([0] + [len(s) for s in sizes])
    times = np.concatenate([time_rng.integers(0, 1000) + np.cumsum(1 + time_rng.geometric(0.2, size=len(s)))
                            for s in sizes])
    owner = np.repeat(np.arange(len(sizes)), np.diff(starts))
    # All baskets in time order; baskets at the same moment in a random order (no user goes first by index).
    order = np.lexsort((time_rng.random(len(times)), times))

    sold = np.zeros(len(wants[0]), dtype=bool)
    item_topic, item_artist = items["topic"], items["artist"]
    artist_bonus = np.log1p(config.basket_artist_affinity)
    bought = [None] * len(times)
    for event in order:
        user = owner[event]
        with np.errstate(divide="ignore"):
            keys = np.log(wants[user]) + rng.gumbel(size=len(sold))
        keys[sold] = -np.inf
        anchor = int(np.argmax(keys))
        if keys[anchor] == -np.inf:
            continue  # nothing this user would buy is left
        basket = np.array([anchor])
        size = sizes[user][event - starts[user]]
        if size > 1:
            pool = topic_items[item_topic[anchor]]
            pool = pool[(keys[pool] > -np.inf) & (pool != anchor)]
            companion_keys = keys[pool] + artist_bonus * (item_artist[pool] == item_artist[anchor])
            basket = np.concatenate([basket, pool[np.argsort(-companion_keys, kind="stable")[:size - 1]]])
        sold[basket] = True
        bought[event] = basket

    baskets = [[bought[e] for e in range(starts[u], starts[u + 1]) if bought[e] is not None]
               for u in range(len(sizes))]
    kept = [e for e in range(len(times)) if bought[e] is not None]  # by user, then time: basket ids as by default
    frame = pd.DataFrame({
        "user": np.concatenate([np.full(len(bought[e]), owner[e]) for e in kept]),
        "item": np.concatenate([bought[e] for e in kept]),
        "timestamp": np.concatenate([np.full(len(bought[e]), times[e]) for e in kept]),
        "basket": np.concatenate([np.full(len(bought[e]), n) for n, e in enumerate(kept)])})
    return baskets, frame


def _basket_sizes(config, count, rng):
    """Sizes of the baskets of ``count`` purchases, at least three baskets when ``count`` >= 3."""
    sizes = (1 + rng.poisson(config.mean_basket_size - 1, size=count)).tolist()
    cut, total = [], 0
    for size in sizes:
        if total >= count:
            break
        cut.append(min(size, count - total))
        total += cut[-1]
    while len(cut) < 3:  # a test, a validation and a train basket per user, when possible
        big = max(range(len(cut)), key=lambda b: cut[b])
        if cut[big] < 2:
            break
        cut[big:big + 1] = [cut[big] // 2, cut[big] - cut[big] // 2]
    return cut
