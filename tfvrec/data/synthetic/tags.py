"""Tags (topic vocabularies, personal vocabularies, post tags) and topic-based groups."""
import numpy as np
import pandas as pd

from tfvrec.data.synthetic.sampling import width


def make_vocab(config, rng):
    """Per-user personal vocabularies (from a shared, Zipf-popular pool) and topic vocabularies."""
    pool = np.array([f"word{k:0{width(config.tag_pool_size)}d}" for k in range(config.tag_pool_size)])
    pool_weight = 1.0 / np.arange(1, config.tag_pool_size + 1) ** 0.8
    keys = np.log(pool_weight) + rng.gumbel(size=(config.num_users, config.tag_pool_size))
    personal = pool[np.argsort(-keys, axis=1, kind="stable")[:, :config.personal_vocab_size]]
    V = config.topic_vocab_size
    topic_vocab = np.array([[f"topic{t}_word{k}" for k in range(V)] for t in range(config.num_topics)])
    topic_word_weights = 1.0 / np.arange(1, V + 1)
    return personal, topic_vocab, topic_word_weights


def draw_topic_words(topics, count, topic_vocab, weights, rng):
    keys = np.log(weights) + rng.gumbel(size=(len(topics), len(weights)))
    chosen = np.sort(np.argsort(-keys, axis=1, kind="stable")[:, :count], axis=1)
    return [list(topic_vocab[t][c]) for t, c in zip(topics, chosen)]


def make_post_tags(config, likes, items, personal_vocab, topic_vocab, topic_word_weights, rng):
    """(user, item, tag) for uploads and a share of likes: topic words mixed with personal words."""
    I = config.num_items
    liked_user = np.concatenate([np.full(len(l), u) for u, l in enumerate(likes)])
    liked_item = np.concatenate(likes)
    tagged = rng.uniform(size=len(liked_item)) < config.tagged_like_fraction
    post_user = np.concatenate([items["creator"], liked_user[tagged]])
    post_item = np.concatenate([np.arange(I), liked_item[tagged]])

    per_post = 1 + rng.poisson(config.mean_tags_per_post - 1, size=len(post_user))
    slot_user, slot_item = np.repeat(post_user, per_post), np.repeat(post_item, per_post)
    personal = rng.uniform(size=len(slot_user)) < config.personal_tag_share
    # Both vocabularies are Zipf-ranked: a user's first personal words are their favourites.
    personal_weight = 1.0 / np.arange(1, config.personal_vocab_size + 1)
    personal_pick = rng.choice(config.personal_vocab_size, size=len(slot_user),
                               p=personal_weight / personal_weight.sum())
    topic_pick = rng.choice(len(topic_word_weights), size=len(slot_user),
                            p=topic_word_weights / topic_word_weights.sum())
    tag = np.where(personal, personal_vocab[slot_user, personal_pick],
                   topic_vocab[items["topic"][slot_item], topic_pick])
    frame = pd.DataFrame({"user": slot_user, "item": slot_item, "tag": tag}).drop_duplicates()
    frame = frame.sort_values(["user", "item", "tag"], kind="stable")
    return frame["user"].to_numpy(), frame["item"].to_numpy(), frame["tag"].to_numpy(dtype=str)


def make_groups(config, taste, rng):
    """Topic-based groups; users join groups of topics they like. Returns (group_topic, (group, user))."""
    G = config.num_groups
    group_topic = np.arange(G) % config.num_topics
    group_topic = group_topic[rng.permutation(G)]
    weight = taste[:, group_topic] + 0.01
    keys = np.log(weight) + rng.gumbel(size=weight.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    counts = np.minimum(1 + rng.poisson(config.mean_groups_per_user - 1, size=config.num_users), G)
    users = np.repeat(np.arange(config.num_users), counts)
    groups = np.concatenate([order[u, :c] for u, c in enumerate(counts)])
    return group_topic, (groups, users)
