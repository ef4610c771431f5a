"""`SyntheticWorldConfig`: the size and knobs of the synthetic world, and their checks.

Plain int / float / str fields only, so ``data.synthetic.<field>`` overrides of a run's config
reach every knob and the resolved config is the world's cache key (`tfvrec.data.resolve`).
"""
import dataclasses

from tfvrec.data.synthetic.images import POOL_GRID

# Knobs added after worlds were first cached, written and trained on, each with the value that gives
# the world of before. At that value a knob stays out of what identifies a world wherever it was not
# there before: the cache key (`key_fields`: both), and from one_of_a_kind on the config a world's
# dataset.yaml records and a baseline run's digest (`recorded_fields`), so every world and baseline
# run of an existing config keeps its cache entry, its bytes and its directory.
LATER_KNOBS = {"topic_palettes": 0, "one_of_a_kind": False, "artist_tint": 18.0}
_RECORDED_AT_DEFAULT = ("topic_palettes",)  # dataset.yaml and the digests held it before the rule


def key_fields(config):
    """The fields of ``config`` that key a cached world (`tfvrec.data.resolve`)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in LATER_KNOBS or v != LATER_KNOBS[k]}


def recorded_fields(config):
    """The fields of ``config`` a written world's dataset.yaml and a baseline run's digest hold."""
    return {k: v for k, v in dataclasses.asdict(config).items()
            if k not in LATER_KNOBS or k in _RECORDED_AT_DEFAULT or v != LATER_KNOBS[k]}


# The planted drivers of a user's likes (`tfvrec.data.synthetic.likes`), in the order their
# indices are drawn; the ground truth names each user's.
DRIVERS = ("visual", "social", "upload", "creator")


@dataclasses.dataclass
class SyntheticWorldConfig:
    """Size and knobs of the synthetic world. Plain int/float/str fields only."""

    name: str = "synthetic"
    seed: int = 0
    num_users: int = 1000
    num_items: int = 3000
    num_topics: int = 20
    num_creators: int = 200  # a random subset of the users; every creator uploads
    num_artists: int = 100
    image_size: int = 32
    feature_dim: int = 64
    image_noise: float = 12.0  # std of per-pixel noise, in uint8 levels
    # 0: every topic has its own colours. k > 0: topic t takes the colours of topic t mod k, so
    # topics differ in shape and texture only and a colour histogram cannot tell them apart
    # (CNN-PerMLP's learned features vs CH-PerMLP). Opt-in: 0 leaves the world unchanged.
    topic_palettes: int = 0
    # How recognisable an artist's hand is: the std, in uint8 levels, of the tint each artist gives
    # their works' foreground (a per-artist colour cast over the topic's palette).
    artist_tint: float = 18.0

    # Tastes. Small concentration: each user cares about a few topics.
    taste_concentration: float = 0.08
    style_bandwidth: float = 0.25  # how close to their preferred style a user's likes are

    # Likes: heavy-tailed counts (log-normal), grouped in baskets.
    mean_likes_per_user: float = 30.0
    likes_spread: float = 0.9  # log-normal sigma of the number of likes per user
    min_likes_per_user: int = 5
    mean_basket_size: float = 2.0
    basket_artist_affinity: float = 4.0  # a basket's other items are (1 + this) x likelier by its artist
    # Repeat purchases: each user has `favourite_artists` artists among their topics, and
    # this share of their like distribution goes to those artists' works, so a user's
    # baskets come back to the same artists (the premise of CuratorNet's guidelines).
    artist_loyalty: float = 0.0
    favourite_artists: int = 2
    # One-of-a-kind works (CuratorNet's art market): every item is sold at most once, the baskets of
    # all users bought in time order (tfvrec.data.synthetic.sales), so every basket — a user's last
    # one included — holds only items nobody else ever bought. Off: users like items independently.
    one_of_a_kind: bool = False

    # Drivers. driver_upload is the share of creators driven by their own uploads; all
    # other users draw visual / social / creator in proportion to the three weights.
    driver_upload: float = 0.5
    driver_visual: float = 0.4
    driver_social: float = 0.35
    driver_creator: float = 0.25
    driver_purity: float = 0.85  # share of driver-directed likes; the rest follow own visual taste

    # Popularity and noise, mixed into every user's like distribution.
    popularity_sigma: float = 0.7  # log-normal sigma of intrinsic item appeal
    popularity_weight: float = 0.1
    noise_weight: float = 0.03

    # Follows.
    mean_follows_per_user: float = 12.0
    homophily: float = 0.8  # share of follow choice driven by taste similarity
    homophily_strength: float = 10.0  # inverse temperature on taste cosine
    creator_follow_boost: float = 2.0  # creators are (1 + boost) x more likely to be followed

    # Tags.
    topic_vocab_size: int = 10
    tags_per_item: int = 3
    tag_pool_size: int = 300
    personal_vocab_size: int = 8
    personal_tag_share: float = 0.4
    mean_tags_per_post: float = 3.0
    tagged_like_fraction: float = 0.25

    # Groups.
    num_groups: int = 40
    mean_groups_per_user: float = 2.0

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the first bad field."""
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), field.type
            if kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, kind)
            if not ok:
                raise ValueError(f"synthetic world: field '{field.name}' must be {kind.__name__}, "
                                 f"got {value!r}")

        def need(condition, message):
            if not condition:
                raise ValueError(f"synthetic world: {message}")

        need(self.seed >= 0, "seed must be >= 0")
        need(self.num_users >= 3, "num_users must be >= 3")
        need(1 <= self.num_creators <= self.num_users, "num_creators must be in 1..num_users")
        need(self.num_items >= self.num_creators, "num_items must be >= num_creators (every creator uploads)")
        need(self.num_topics >= 1 and self.num_artists >= 1, "num_topics and num_artists must be >= 1")
        need(self.image_size >= POOL_GRID, f"image_size must be >= {POOL_GRID}")
        need(self.feature_dim >= 1, "feature_dim must be >= 1")
        need(self.topic_palettes >= 0, "topic_palettes must be >= 0 (0: a palette per topic)")
        need(3 <= self.min_likes_per_user <= self.num_items // 4,
             "min_likes_per_user must be in 3..num_items/4 (three baskets per user; likes are capped "
             "at a quarter of the items)")
        need(self.mean_likes_per_user >= self.min_likes_per_user, "mean_likes_per_user < min_likes_per_user")
        need(self.mean_basket_size >= 1 and self.basket_artist_affinity >= 0,
             "need mean_basket_size >= 1 and basket_artist_affinity >= 0")
        need(1 <= self.favourite_artists <= self.num_artists, "favourite_artists must be in 1..num_artists")
        need(not self.one_of_a_kind or self.num_items >= self.num_users * self.mean_likes_per_user,
             "one_of_a_kind sells every item once: num_items must be >= num_users * mean_likes_per_user "
             f"(the expected purchases, {self.num_users * self.mean_likes_per_user:g})")
        for name in ("artist_loyalty", "driver_upload", "driver_purity", "popularity_weight", "noise_weight",
                     "homophily", "personal_tag_share", "tagged_like_fraction"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        need(self.popularity_weight + self.noise_weight < 1, "popularity_weight + noise_weight must be < 1")
        need(min(self.driver_visual, self.driver_social, self.driver_creator) >= 0
             and self.driver_visual + self.driver_social + self.driver_creator > 0,
             "driver_visual/social/creator must be >= 0 with a positive sum")
        need(self.taste_concentration > 0 and self.style_bandwidth > 0, "taste_concentration and "
             "style_bandwidth must be > 0")
        need(self.mean_follows_per_user >= 1, "mean_follows_per_user must be >= 1")
        need(1 <= self.tags_per_item <= self.topic_vocab_size, "tags_per_item must be in 1..topic_vocab_size")
        need(1 <= self.personal_vocab_size <= self.tag_pool_size, "personal_vocab_size must be in 1..tag_pool_size")
        need(self.mean_tags_per_post >= 1, "mean_tags_per_post must be >= 1")
        need(self.num_groups >= 1 and 1 <= self.mean_groups_per_user <= self.num_groups,
             "need num_groups >= 1 and 1 <= mean_groups_per_user <= num_groups")
        need(self.image_noise >= 0 and self.popularity_sigma >= 0 and self.likes_spread >= 0 and self.artist_tint >= 0,
             "image_noise, popularity_sigma, likes_spread and artist_tint must be >= 0")
