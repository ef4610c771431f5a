"""The synthetic social image world: tfvrec's embedded default data set.

A small image-sharing platform whose hidden structure is known, so every model in
the zoo has something real to find and tests can check that it finds it. What the
world plants, and which model each part is for:

* **Topics -> pixels.** Every image has one topic. Its topic fixes a colour palette,
  a foreground shape and a background stripe texture; the image's own 2-d *style*
  sets shape size and brightness; its artist adds a slight tint; noise and jitter
  make every image different. A CNN can learn topic (and style) from pixels
  (CDL, CNN-PerMLP).
* **Pre-trained features.** Feature set ``pixels`` is a fixed function of the pixels
  alone (colour histograms, a downsampled image and edge energy through a fixed
  random two-layer network), standing in for a frozen ImageNet CNN. Whatever the
  features tell a model, they learned from the image (CuratorNet, HASC's F_i).
* **Users** have a sparse Dirichlet taste over topics and a preferred style.
  **Creators** (a subset of users) upload the images, mostly in their favourite
  topics and near their own style (HASC's upload aspect). **Artists** each work in
  one or two topics.
* **Follows** are homophilous (users follow users of similar taste) and lean
  towards creators (HASC's social and creator aspects; CDL's friends' favourites).
* **Likes** come in timestamped **baskets**, coherent in topic and artist
  (CuratorNet's D1/D2/D3); with ``artist_loyalty`` > 0 users also come back to
  their favourite artists basket after basket (CuratorNet's premise). Each user
  has one planted *driver* for their likes, saved in the ground truth:

  - ``visual``: items of the user's topics near their preferred style;
  - ``social``: what their followees liked, and their followees' topics;
  - ``upload`` (creators only): items resembling the user's own uploads;
  - ``creator``: items uploaded by the creators the user follows.

  A share of every user's likes follows their own visual taste anyway, and all
  likes are tilted towards intrinsically appealing items, plus a popularity and a
  uniform-noise component, so that popularity is a fair baseline to beat.
* **Tags.** Items carry words of their topic's vocabulary ("topic3_word1"). Users
  tag their uploads and some of their likes (``post_tags``) with topic words plus
  words from a small personal vocabulary drawn from a shared pool, so a user's own
  history predicts their tags (CNN-PerMLP's personalisation, CDL's user vector).
* **Groups** are topic-based; users join groups of the topics they like (CDL's
  "liked in the user's groups" negatives).

Splits are leave-last-basket-out by time: per user, the basket with the latest
timestamp is ``test``, the one before is ``validation``, the rest is ``train``.

Where each part lives:

* `config` — `SyntheticWorldConfig` and its checks, `DRIVERS`;
* `population` — users' drivers, items (creator, topic, style, appeal, artist), follows,
  favourite artists;
* `likes` — baskets drawn by each user's driver, their timestamps, the split;
* `images` — rendering and the fixed ``pixels`` features;
* `tags` — topic and personal vocabularies, post tags, groups;
* `world` — `generate_world` builds everything in memory; `write_world` writes it in the
  tfvrec data set format (via `write_dataset`) plus the ground truth in
  ``synthetic_truth.npz``, read back with `load_truth`. Same config and seed, same bytes:
  every random step draws from its own stream, keyed by the seed.
"""
from tfvrec.data.synthetic.config import DRIVERS, SyntheticWorldConfig, key_fields, recorded_fields
from tfvrec.data.synthetic.images import pixel_features, render_images
from tfvrec.data.synthetic.world import TRUTH_FILE, generate_world, load_truth, write_world

__all__ = ["DRIVERS", "TRUTH_FILE", "SyntheticWorldConfig", "generate_world", "key_fields", "load_truth",
           "pixel_features", "recorded_fields", "render_images", "write_world"]
