"""tfvrec: published visually-aware image recommenders on TensorFlow / tf-keras.

tensorflow-recommenders refuses Keras 3, so the legacy tf-keras implementation is
selected here, before anything imports TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")  # the CLI keeps a level the user set
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
