"""Visual item features: ``tfvrec features`` (TF-Hub handle -> item-keyed vectors) and the
offline EfficientNet-Lite0 ImageNet extractor (``tools/convert_efficientnet_lite0.py``).

See ``docs/features.md``. TensorFlow is imported lazily, so importing this package is cheap.
"""
import sys
import types


def import_hub():
    """``import tensorflow_hub``, working around its use of the removed ``pkg_resources``.

    tensorflow-hub 0.16.1 calls ``pkg_resources.parse_version`` at import time; setuptools
    81+ no longer ships ``pkg_resources``. If it is missing, a minimal stand-in providing
    only ``parse_version`` (from ``packaging``) is registered first.
    """
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from packaging.version import parse

        shim = types.ModuleType("pkg_resources")
        shim.parse_version = parse
        shim.__doc__ = "tfvrec stand-in: only parse_version, for tensorflow_hub's import-time check."
        sys.modules["pkg_resources"] = shim
        try:
            import tensorflow_hub as hub
        finally:
            if sys.modules.get("pkg_resources") is shim:
                del sys.modules["pkg_resources"]
        return hub
    import tensorflow_hub as hub
    return hub
