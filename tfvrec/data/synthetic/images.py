"""Rendering of the world's images and their fixed "pre-trained" features.

Every image is drawn from its topic (palette, shape, stripe texture), its own 2-d style
(shape size, brightness) and its artist (a slight tint), plus jitter and noise. Feature set
``pixels`` is a fixed function of the pixels alone (`pixel_features`).
"""
import numpy as np

# The "pre-trained" feature network is part of the simulated world's physics, not of
# one world instance: it must not change with the seed.
_FEATURE_NETWORK_SEED = 20160627
_NUM_SHAPES = 5
POOL_GRID = 8  # downsampled image side fed to the feature network
_EDGE_GRID = 4
_HIST_BINS = 8
_CHROMA_BINS = 6


def render_images(config, items, look_rng, render_rng):
    """RGB uint8 images ``[num_items, s, s, 3]`` drawn from topic, style and artist."""
    T, S, n = config.num_topics, config.image_size, len(items["topic"])
    topic, style = items["topic"], items["style"]

    # Topic looks are spread out on purpose (evenly spaced hues, cycling shapes, a
    # texture per topic block) so that distinct topics stay visually distinct.
    bg_hue = look_rng.permutation(T) / T
    fg_hue = (bg_hue + look_rng.uniform(0.3, 0.7, size=T)) % 1.0
    bg = _hsv_to_rgb(bg_hue, look_rng.uniform(0.4, 0.9, size=T), look_rng.uniform(0.5, 0.9, size=T))
    fg = _hsv_to_rgb(fg_hue, look_rng.uniform(0.6, 1.0, size=T), look_rng.uniform(0.6, 1.0, size=T))
    shape = np.arange(T) % _NUM_SHAPES
    block = np.arange(T) // _NUM_SHAPES
    stripe_freq = 1.5 + (block % 4) + look_rng.uniform(0, 0.5, size=T)
    stripe_angle = np.pi * ((block * 0.37 + look_rng.uniform(0, 0.2, size=T)) % 1.0)
    # (drawn at the default std 18 and scaled: every other look stays that of the default world)
    artist_tint = look_rng.normal(0, 18, size=(config.num_artists, 3)) * (config.artist_tint / 18.0)
    if config.topic_palettes:  # (after every draw: the other looks stay those of the default world)
        shared = np.arange(T) % config.topic_palettes
        bg, fg = bg[shared], fg[shared]

    grid = np.arange(S, dtype=np.float32) + 0.5
    ys, xs = grid[None, :, None], grid[None, None, :]
    centre = S / 2 + render_rng.normal(0, S * 0.07, size=(n, 2)).astype(np.float32)
    radius = (S * (0.16 + 0.24 * style[:, 0])).astype(np.float32)[:, None, None]
    inside = np.empty((n, S, S), dtype=bool)
    for kind in range(_NUM_SHAPES):
        rows = np.flatnonzero(shape[topic] == kind)
        inside[rows] = _shape_mask(kind, ys - centre[rows, 0, None, None], xs - centre[rows, 1, None, None],
                                   radius[rows])

    angle = stripe_angle[topic][:, None, None]
    phase = render_rng.uniform(0, 2 * np.pi, size=n)[:, None, None]
    wave = np.sin(2 * np.pi * stripe_freq[topic][:, None, None] * (xs * np.cos(angle) + ys * np.sin(angle)) / S
                  + phase).astype(np.float32)
    background = bg[topic].astype(np.float32)[:, None, None, :] * (1 + 0.3 * wave[..., None])
    foreground = (fg[topic] + artist_tint[items["artist"]]).astype(np.float32)[:, None, None, :]
    image = np.where(inside[..., None], foreground, background)
    image *= (0.55 + 0.6 * style[:, 1]).astype(np.float32)[:, None, None, None]  # style 1: brightness
    image += render_rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(config.image_noise)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _shape_mask(kind, dy, dx, radius):
    """Pixels inside shape ``kind`` (disc, square, diamond, ring, cross) centred at offset 0."""
    if kind == 0:
        return dx * dx + dy * dy < radius * radius
    if kind == 1:
        return np.maximum(np.abs(dx), np.abs(dy)) < radius * 0.85
    if kind == 2:
        return np.abs(dx) + np.abs(dy) < radius * 1.2
    dist = np.sqrt(dx * dx + dy * dy)
    if kind == 3:
        return np.abs(dist - radius * 0.8) < radius * 0.3
    return ((np.abs(dx) < radius * 0.35) | (np.abs(dy) < radius * 0.35)) & (dist < radius * 1.2)


def pixel_features(pixels, dim):
    """The fixed "pre-trained" feature vector of each image, from its pixels alone.

    A chromaticity histogram (colour regardless of brightness, as a trained CNN is
    largely lighting-invariant), a brightness histogram, an 8x8 downsampled image and
    4x4 edge energy, through a fixed random ReLU layer and a tanh projection to
    ``dim``. The network's weights depend only on the image size and ``dim``, never on
    the world's seed. Returns float32 ``[n, dim]``.
    """
    pixels = np.asarray(pixels)
    n, S = len(pixels), pixels.shape[1]
    x = pixels.astype(np.float32) / 255.0

    total = x.sum(-1) + 1e-3
    # r and g shares of the intensity lie in [0, 1]; bins cover [0, 2/3], where most colours fall.
    red, green = [np.minimum((x[..., c] / total * 1.5 * _CHROMA_BINS).astype(np.int64), _CHROMA_BINS - 1)
                  for c in (0, 1)]
    chroma = _histogram(red * _CHROMA_BINS + green, _CHROMA_BINS ** 2)
    light = _histogram(np.minimum((x.mean(-1) * _HIST_BINS).astype(np.int64), _HIST_BINS - 1), _HIST_BINS)
    small = _area_pool(x, POOL_GRID).reshape(n, -1)
    gy, gx = np.abs(np.diff(x, axis=1)).mean(-1), np.abs(np.diff(x, axis=2)).mean(-1)
    edges = np.concatenate([_area_pool(gy[..., None], _EDGE_GRID), _area_pool(gx[..., None], _EDGE_GRID)],
                           axis=-1).reshape(n, -1)
    # Scales put the four parts on a par; colour dominates, as it does for the topics.
    inputs = np.concatenate([chroma * 8.0, light * 2.0, small - 0.5, edges * 8.0], axis=1)

    weights = np.random.default_rng([_FEATURE_NETWORK_SEED, S, dim])
    hidden_dim = 256
    w1 = weights.normal(0, 1 / np.sqrt(inputs.shape[1]), size=(inputs.shape[1], hidden_dim)).astype(np.float32)
    b1 = weights.normal(0, 0.1, size=hidden_dim).astype(np.float32)
    w2 = weights.normal(0, 1 / np.sqrt(hidden_dim), size=(hidden_dim, dim)).astype(np.float32)
    hidden = np.maximum(inputs.astype(np.float32) @ w1 + b1, 0)
    return np.tanh(hidden @ w2).astype(np.float32)


def _histogram(bins, size):
    """Per-image normalised histogram of integer ``bins`` ``[n, h, w]`` -> ``[n, size]``."""
    n = len(bins)
    slot = np.arange(n)[:, None, None] * size + bins
    return np.bincount(slot.ravel(), minlength=n * size).reshape(n, size) / bins[0].size



def _area_pool(images, grid):
    """Average-pool ``[n, h, w, c]`` images to ``[n, grid, grid, c]`` for any h, w >= grid."""

    def pool(size):
        cell = (np.arange(size) * grid) // size
        weights = (cell[None, :] == np.arange(grid)[:, None]).astype(np.float32)
        return weights / weights.sum(axis=1, keepdims=True)

    channels_first = np.moveaxis(images, -1, 1).astype(np.float32)  # [n, c, h, w]
    pooled = pool(images.shape[1]) @ channels_first @ pool(images.shape[2]).T
    return np.moveaxis(pooled, 1, -1)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV (all in [0, 1]) to RGB in [0, 255], ``[n, 3]``."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack([v, t, p], -1), np.stack([q, v, p], -1), np.stack([p, v, t], -1),
                      np.stack([p, q, v], -1), np.stack([t, p, v], -1), np.stack([v, p, q], -1)])
    return table[i, np.arange(len(h))] * 255.0
