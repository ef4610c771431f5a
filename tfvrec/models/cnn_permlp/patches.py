"""Image → patches (eq. 2): an aspect-preserving square, cut into Q patches.

The image is resized (bilinear, antialiased) so that its shorter side is S, the centre
S × S square is kept, and Q = 3 patches of d × d are cut at its top-left, centre and
bottom-right (Q = 1: the centre only). The same TensorFlow ops prepare training images
and the images a served request sends, so a served answer equals the in-process one.
"""
import numpy as np
import tensorflow as tf

from tfvrec.data.errors import DataError
from tfvrec.features.images import decode_bounded
from tfvrec.features.images import file_problem
from tfvrec.features.images import size_problem


def decode(encoded):
    """Encoded JPEG / PNG / GIF / BMP bytes (a scalar string tensor) → uint8 ``[h, w, 3]``; more pixels
    than ``TFVREC_MAX_IMAGE_PIXELS`` are refused before decoding (`tfvrec.features.images.decode_bounded`)."""
    return decode_bounded(encoded)


def square(image, side):
    """``[h, w, 3]`` → uint8 ``[side, side, 3]``: shorter side resized to ``side``, centre crop."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(side, tf.float32) / tf.reduce_min(shape)
    size = tf.maximum(tf.cast(tf.math.ceil(shape * scale - 1e-4), tf.int32), side)
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    cropped = resized[top:top + side, left:left + side, :]
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def cut(squared, patch, num_patches=3):
    """``[S, S, 3]`` → ``[Q, d, d, 3]``: top-left, centre, bottom-right (Q = 3) or centre (Q = 1)."""
    side = tf.shape(squared)[0]
    mid, end = (side - patch) // 2, side - patch
    centre = squared[mid:mid + patch, mid:mid + patch]
    if num_patches == 1:
        return centre[None]
    return tf.stack([squared[:patch, :patch], centre, squared[end:end + patch, end:end + patch]])


def patches_of(image, side, patch, num_patches=3):
    return cut(square(image, side), patch, num_patches)


def patches_of_bytes(encoded, side, patch, num_patches=3):
    return patches_of(decode(encoded), side, patch, num_patches)


def read_image(path):
    """uint8 ``[h, w, 3]`` of an image file; `DataError` naming the file if it cannot be read or decoded."""
    if file_problem(path) is not None:  # (missing, a FIFO, too large: never opened)
        raise DataError(path, file_problem(path))
    try:
        data = tf.io.read_file(path)
    except (tf.errors.NotFoundError, tf.errors.OpError) as e:
        raise DataError(path, f"cannot read the image ({type(e).__name__})") from None
    return decode_bytes(data.numpy(), path)


def decode_bytes(data, what="<image>"):
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise DataError(what, "empty image data")
    try:
        return decode(tf.constant(bytes(data))).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.OpError):
        problem = size_problem(tf.constant(bytes(data)))  # an image bomb is refused before decoding
        if problem is not None and "pixels" in problem:
            raise DataError(what, problem) from None
        raise DataError(what, "the file is not an image TensorFlow can decode (JPEG, PNG, GIF or BMP)") from None


def patch_table(images, side, patch, num_patches=3):
    """``[n, Q, d, d, 3]`` uint8 from a list of uint8 images (any sizes)."""
    out = np.zeros((len(images), num_patches, patch, patch, 3), np.uint8)
    for n, image in enumerate(images):
        out[n] = patches_of(tf.constant(image), side, patch, num_patches).numpy()
    return out
