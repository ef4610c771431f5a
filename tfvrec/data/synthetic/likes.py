"""The likes: each user's baskets drawn by their planted driver, put in time order, and the
leave-last-basket-out split.

Two ways to turn a user's like distribution into baskets: by default each user draws all their
baskets from it independently of the others (an item may be liked by many users), then the
baskets are put in a random time order (`timestamp_baskets`); with ``one_of_a_kind`` every item
is sold once, in time order, by the market of `tfvrec.data.synthetic.sales`.
"""
import numpy as np
import pandas as pd

from tfvrec import progress
from tfvrec.data.synthetic.config import DRIVERS
from tfvrec.data.synthetic.sales import sell_once
from tfvrec.data.synthetic.sampling import BLOCK_ROWS, group, heavy_tailed_counts, normalize, style_kernel


def make_likes(config, taste, user_style, driver, follows, items, favourites, rng, social_rng, time_rng):
    """Every like, drawn by each user's planted driver: ``(baskets, frame)``, ``baskets`` a list per
    user of arrays of item indices, ``frame`` the likes as rows (user, item, timestamp, basket)."""
    U, I = config.num_users, config.num_items
    topic, appeal = items["topic"], items["appeal"]
    counts = heavy_tailed_counts(rng, U, config.mean_likes_per_user, config.likes_spread,
                                 config.min_likes_per_user, I // 4)
    uploads = group(items["creator"], np.arange(I), U)
    followees = group(follows[0], follows[1], U)
    topic_items = group(topic, np.arange(I), config.num_topics)
    purity = config.driver_purity
    popularity = appeal / appeal.sum()
    unit = taste / np.linalg.norm(taste, axis=1, keepdims=True)

    wants = [None] * U  # one_of_a_kind: each user's like distribution, for the market

    def draw(user, driven, visual, stream):
        """Mix in own taste, popularity and noise (never one's own uploads), then draw baskets."""
        p = (1 - config.popularity_weight - config.noise_weight) * (purity * driven + (1 - purity) * visual) \
            + config.popularity_weight * popularity + config.noise_weight / I
        p[uploads[user]] = 0
        if config.artist_loyalty > 0:
            loyal = p * np.isin(items["artist"], favourites[user])
            if loyal.sum() > 0:
                p = (1 - config.artist_loyalty) * p / p.sum() + config.artist_loyalty * loyal / loyal.sum()
        if config.one_of_a_kind:  # the market draws the baskets once every user's wants are known
            wants[user] = p
            return None
        return _draw_baskets(config, p, counts[user], items, topic_items, stream)

    baskets = [None] * U
    for start in progress.bar(range(0, U, BLOCK_ROWS), desc="synthetic world", unit="block"):
        rows = np.arange(start, min(start + BLOCK_ROWS, U))
        visual = _visual_taste(taste[rows], user_style[rows], items, config)
        for n, user in enumerate(rows):
            kind = DRIVERS[driver[user]]
            if kind == "social":
                continue
            if kind == "upload":
                own = uploads[user]
                similar = (style_kernel(items["style"][own], items["style"], config.style_bandwidth)
                           * (topic[own][:, None] == topic[None, :])).sum(axis=0)
                driven = normalize(similar * appeal)
            elif kind == "creator":
                admired = np.isin(items["creator"], followees[user])
                driven = normalize(admired * appeal) if admired.any() else visual[n]
            else:
                driven = visual[n]
            baskets[user] = draw(user, driven, visual[n], rng)

    # Social users like what their followees liked, so they go after everyone else,
    # one at a time in random order (a social followee counts once it has liked). In a
    # one-of-a-kind world what a followee bought is sold: a social user buys in the topics
    # their followees like (the market runs after every want is known, so no followee is active).
    for user in social_rng.permutation(np.flatnonzero(driver == DRIVERS.index("social"))):
        friends = followees[user]
        own_visual = _visual_taste(taste[user][None], user_style[user][None], items, config)[0]
        # Influence is uneven: the followees closest in taste sway the user most (what
        # HASC's social attention should recover), but every followee has some say, so
        # the user does not just copy their closest friend.
        closeness = config.homophily_strength * (unit[friends] @ unit[user])
        influence = 0.5 / len(friends) + 0.5 * normalize(np.exp(closeness - closeness.max()))
        friends_topics = normalize((influence @ taste[friends])[topic] * appeal)
        active = np.array([baskets[f] is not None for f in friends])
        if active.any():
            friends_likes = np.zeros(I)
            for f, weight in zip(friends[active], influence[active]):
                liked = np.concatenate(baskets[f])
                friends_likes[liked] += weight / len(liked)
            driven = 0.9 * normalize(friends_likes) + 0.1 * friends_topics
        else:
            driven = friends_topics
        baskets[user] = draw(user, driven, own_visual, social_rng)
    if config.one_of_a_kind:
        return sell_once(config, np.stack(wants), counts, items, topic_items, rng, time_rng)
    return baskets, timestamp_baskets(baskets, time_rng)


def _visual_taste(taste, style, items, config):
    """Like distributions ``[n, num_items]`` of users with these tastes and preferred styles.

    A topic gets the user's taste for it; within the topic, items near the user's
    style (and appealing ones) get more. Normalising per topic keeps style a
    within-topic preference: a rare style never outweighs the user's topics.
    """
    weight = style_kernel(style, items["style"], config.style_bandwidth) * items["appeal"]
    per_topic = weight @ np.eye(config.num_topics)[items["topic"]]
    return taste[:, items["topic"]] * weight / np.maximum(per_topic[:, items["topic"]], 1e-300)


def _draw_baskets(config, p, count, items, topic_items, rng):
    """``count`` distinct items drawn from ``p``, as baskets coherent in topic and artist.

    Each basket's first item is drawn from ``p``; the rest come from the same topic,
    by ``p`` again but favouring the first item's artist. Drawing whole baskets this
    way (rather than chopping a flat sample) keeps every basket, including the
    held-out last one, as faithful to ``p`` as a single like.
    """
    with np.errstate(divide="ignore"):
        keys = np.log(p) + rng.gumbel(size=len(p))  # Gumbel top-k: sampling without replacement
    order = np.argsort(-keys, kind="stable").tolist()
    count = min(count, int((p > 0).sum()))
    sizes = (1 + rng.poisson(config.mean_basket_size - 1, size=count)).tolist()
    artist_bonus = np.log1p(config.basket_artist_affinity)
    item_topic, item_artist = items["topic"], items["artist"]
    taken = p <= 0  # impossible items count as taken: never drawn as companions
    baskets, total, k = [], 0, 0
    while total < count:
        while taken[order[k]]:
            k += 1
        anchor = order[k]
        taken[anchor] = True
        size = min(sizes[len(baskets)], count - total)
        if size == 1:
            baskets.append(np.array([anchor]))
            total += 1
            continue
        pool = topic_items[item_topic[anchor]]
        pool = pool[~taken[pool]]
        companion_keys = keys[pool] + artist_bonus * (item_artist[pool] == item_artist[anchor])
        companions = pool[np.argsort(-companion_keys, kind="stable")[:size - 1]]
        taken[companions] = True
        baskets.append(np.concatenate([[anchor], companions]))
        total += len(companions) + 1
    while len(baskets) < 3:  # a test, a validation and a train basket per user, when possible
        big = max(range(len(baskets)), key=lambda b: len(baskets[b]))
        if len(baskets[big]) < 2:
            break
        half = len(baskets[big]) // 2
        baskets[big:big + 1] = [baskets[big][:half], baskets[big][half:]]
    return baskets


def timestamp_baskets(baskets, rng):
    """Put each user's baskets in random time order: a frame (user, item, timestamp, basket).

    Baskets were drawn most-likely first; shuffling keeps the held-out last basket
    a typical one. Basket ids are unique over all users.
    """
    users, item_rows, stamps, basket_ids = [], [], [], []
    next_basket = 0
    for user, user_baskets in enumerate(baskets):
        sizes = np.array([len(b) for b in user_baskets])
        order = rng.permutation(len(user_baskets))
        times = rng.integers(0, 1000) + np.cumsum(1 + rng.geometric(0.2, size=len(order)))
        users.append(np.full(sizes.sum(), user))
        item_rows.extend(user_baskets[b] for b in order)
        stamps.append(np.repeat(times, sizes[order]))
        basket_ids.append(np.repeat(next_basket + np.arange(len(order)), sizes[order]))
        next_basket += len(order)
    return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(item_rows),
                         "timestamp": np.concatenate(stamps), "basket": np.concatenate(basket_ids)})


def split_by_last_basket(likes):
    """Per user: latest-timestamp basket -> test, the one before -> validation, rest -> train."""
    stamps = likes.groupby("user")["timestamp"]
    rank = stamps.rank(method="dense", ascending=False).astype(int)
    eligible = stamps.transform("nunique") >= 3
    split = np.where(eligible & (rank == 1), "test", np.where(eligible & (rank == 2), "validation", "train"))
    return {name: likes[split == name].sort_values(["user", "timestamp", "item"]).reset_index(drop=True)
            for name in ("train", "validation", "test")}
