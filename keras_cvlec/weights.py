"""Weight transfer from keras.applications models into keras_cvlec models.

Layers are matched by name: keras_cvlec's hierarchical names
(`stage2_block1` with sublayers `conv1`, `bn1`, ...) are translated into the
flat keras.applications names (`conv3_block1_1_conv`,
`convnext_tiny_stage_1_block_0_depthwise_conv`, ...), every weight shape is
checked, and any layer left over on either side is an error. One table a
family (`_RESNET_LAYER_NAMES`, `_CONVNEXT_LAYER_NAMES` and the block
functions below); the family is the type of the model's blocks.

Weights are copied unchanged, except the ConvNeXt depthwise kernels:
keras.applications implements them as `Conv2D(groups=C)` with kernels shaped
`(k, k, 1, C)`, keras_cvlec as `DepthwiseConv2D` with `(k, k, C, 1)`; the
same numbers in the same order, so the conversion is a swap of the last two
axes.

Also here: the download of those ImageNet weights (`fetch_imagenet_weights`,
with a `WeightsUnavailableError` that says what to do offline) and the
loading of a `.weights.h5` file into a builder's model (`load_weights_file`,
with errors that name the file and what does not match).
"""

import os
import re
import tempfile
import warnings

import h5py
import keras
import numpy as np

from keras_cvlec.layers.convnext_block import ConvNeXtBlock
from keras_cvlec.layers.resnet_blocks import ResNetBlock

# keras_cvlec top-level layer name -> keras.applications layer name, where
# they differ. ConvNeXt names start with the source model's name (`{prefix}`,
# e.g. "convnext_tiny"), as keras.applications names them.
_RESNET_LAYER_NAMES = {"stem_conv": "conv1_conv", "stem_bn": "conv1_bn"}
_CONVNEXT_LAYER_NAMES = {
    "stem_conv": "{prefix}_stem_conv",
    "stem_norm": "{prefix}_stem_layernorm",
    "head_norm": "{prefix}_head_layernorm",
    "predictions": "{prefix}_head_dense",
}
# stage{s}_downsample_{norm,conv} (s = 2, 3, 4) -> 0-based downsampling index.
_CONVNEXT_DOWNSAMPLE = re.compile(r"stage(\d+)_downsample_(norm|conv)")
_CONVNEXT_DOWNSAMPLE_NAMES = {
    "norm": "{prefix}_downsampling_layernorm_{index}",
    "conv": "{prefix}_downsampling_conv_{index}",
}
# ConvNeXtBlock sublayer -> keras.applications suffix.
_CONVNEXT_BLOCK_NAMES = {
    "depthwise_conv": "depthwise_conv",
    "norm": "layernorm",
    "pointwise_conv1": "pointwise_conv_1",
    "pointwise_conv2": "pointwise_conv_2",
    "layer_scale": "layer_scale",
}
# The classifier of each family's source: skipped when the target has no
# `predictions` layer (include_top=False).
_RESNET_TOP = ("predictions",)
_CONVNEXT_TOP = ("{prefix}_head_layernorm", "{prefix}_head_dense")
_CLASSIFIER_NAME = "predictions"


def _resnet_block_pairs(block):
    stage, index = re.fullmatch(r"stage(\d+)_block(\d+)", block.name).groups()
    prefix = f"conv{int(stage) + 1}_block{index}"
    if block.preact_norm is not None:
        yield block.preact_norm, f"{prefix}_preact_bn"
    for number, conv in enumerate(block.branch_convs, start=1):
        yield conv, f"{prefix}_{number}_conv"
    for number, norm in enumerate(block.branch_norms, start=1):
        yield norm, f"{prefix}_{number}_bn"
    if block.shortcut_conv is not None:
        yield block.shortcut_conv, f"{prefix}_0_conv"
    if block.shortcut_norm is not None:
        yield block.shortcut_norm, f"{prefix}_0_bn"


def _convnext_block_pairs(block, prefix):
    stage, index = re.fullmatch(r"stage(\d+)_block(\d+)", block.name).groups()
    block_prefix = f"{prefix}_stage_{int(stage) - 1}_block_{int(index) - 1}"
    for attribute, suffix in _CONVNEXT_BLOCK_NAMES.items():
        sublayer = getattr(block, attribute)
        if sublayer is not None:
            yield sublayer, f"{block_prefix}_{suffix}"


def _convnext_layer_name(name, prefix):
    match = _CONVNEXT_DOWNSAMPLE.fullmatch(name)
    if match:
        stage, kind = match.groups()
        return _CONVNEXT_DOWNSAMPLE_NAMES[kind].format(
            prefix=prefix, index=int(stage) - 2
        )
    return _CONVNEXT_LAYER_NAMES.get(name, name).format(prefix=prefix)


def _is_convnext(model):
    return any(isinstance(layer, ConvNeXtBlock) for layer in model.layers)


def _layer_pairs(model, prefix):
    """(keras_cvlec layer, keras.applications layer name) for each weighted
    layer; `prefix` is the source model's name (ConvNeXt layer names)."""
    convnext = _is_convnext(model)
    for layer in model.layers:
        if isinstance(layer, ResNetBlock):
            yield from _resnet_block_pairs(layer)
        elif isinstance(layer, ConvNeXtBlock):
            yield from _convnext_block_pairs(layer, prefix)
        elif layer.weights:
            if convnext:
                yield layer, _convnext_layer_name(layer.name, prefix)
            else:
                yield layer, _RESNET_LAYER_NAMES.get(layer.name, layer.name)


def _flat_layers(model):
    """The layers of `model`, with nested models (keras.applications ConvNeXt
    wraps its stem and downsampling layers in `Sequential`s) expanded."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def _convert(target, source_weights):
    """Source weights in the target's layout (depthwise kernels, see above)."""
    if isinstance(target, keras.layers.DepthwiseConv2D):
        kernel, *rest = source_weights
        if kernel.ndim == 4 and kernel.shape[2] == 1 and kernel.shape[3] > 1:
            kernel = np.transpose(kernel, (0, 1, 3, 2))
        return [kernel, *rest]
    return source_weights


def _skippable_top(model, source_model, prefix):
    """Source layers a headless `model` does not need: the source's
    classifier, and the final `LayerNormalization` that a headless
    keras.applications ConvNeXt (`include_top=False`) appends after its last
    stage (keras_cvlec's headless ConvNeXt returns the raw stage-4 features,
    as `stage4_output`)."""
    if any(layer.name == _CLASSIFIER_NAME for layer in model.layers):
        return set()
    if not _is_convnext(model):
        return set(_RESNET_TOP)
    names = {name.format(prefix=prefix) for name in _CONVNEXT_TOP}
    last = source_model.layers[-1]
    if isinstance(last, keras.layers.LayerNormalization):
        names.add(last.name)
    return names


def from_keras_applications(model, source_model):
    """Copies the weights of a keras.applications model into `model`.

    Supported sources: `ResNet50/101/152` into `build_resnet(..., version="v1")`
    and `ResNet50V2/101V2/152V2` into `version="v2"` of the same depth;
    `ConvNeXtTiny/Small/Base/Large/XLarge` into `build_convnext` of the same
    variant (any data format; `layer_scale_init_value` not None). The
    source's classifier is skipped when `model` has none
    (`include_top=False`), and so is the extra final layer norm of a headless
    keras.applications ConvNeXt. Layers without weights are not matched: the
    input `Normalization` of keras.applications ConvNeXt
    (`include_preprocessing=True`) has none and is not copied; a keras_cvlec
    ConvNeXt takes inputs already normalised (see `build_convnext`).

    Args:
        model: a keras_cvlec model.
        source_model: the keras.applications model, built with any weights.
            ConvNeXt layer names start with the source model's name, as
            keras.applications builds them.

    Returns:
        `model`, with the source's weights.

    Raises:
        ValueError: when a layer is missing on either side or a weight shape
            differs (e.g. a different depth, width, version or `num_classes`).

    Example:

    >>> source = keras.applications.ResNet50(weights=None)
    >>> model = keras_cvlec.build_resnet("resnet50")
    >>> _ = keras_cvlec.weights.from_keras_applications(model, source)
    """
    prefix = source_model.name
    source_layers = {layer.name: layer for layer in _flat_layers(source_model)}
    assignments = []
    for target, source_name in _layer_pairs(model, prefix):
        source = source_layers.pop(source_name, None)
        if source is None:
            raise ValueError(
                f"Cannot transfer weights from {source_model.name!r} into "
                f"{model.name!r}: the source has no layer {source_name!r} for "
                f"layer {target.path!r}."
            )
        source_weights = _convert(target, source.get_weights())
        target_shapes = [tuple(w.shape) for w in target.weights]
        source_shapes = [tuple(w.shape) for w in source_weights]
        if target_shapes != source_shapes:
            raise ValueError(
                f"Cannot transfer weights from {source_model.name!r} into "
                f"{model.name!r}: layer {target.path!r} has weight shapes "
                f"{target_shapes}, source layer {source_name!r} has "
                f"{source_shapes}."
            )
        assignments.append((target, source_weights))
    skippable = _skippable_top(model, source_model, prefix)
    leftover = [
        name
        for name, layer in source_layers.items()
        if layer.weights and name not in skippable
    ]
    if leftover:
        raise ValueError(
            f"Cannot transfer weights from {source_model.name!r} into "
            f"{model.name!r}: source layers without a counterpart: "
            f"{', '.join(leftover[:10])}{' ...' if len(leftover) > 10 else ''}."
        )
    for target, source_weights in assignments:
        target.set_weights(source_weights)
    return model


# keras.applications downloads its ImageNet weights from
# `{_KERAS_APPLICATIONS_URL}{folder}/{file name}` (ResNets under "resnet",
# ConvNeXts under "convnext") into `$KERAS_HOME/{_CACHE_SUBDIR}`.
_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_CONVNEXT_APPLICATION = "ConvNeXt"
# The folder of `$KERAS_HOME` where keras.applications caches its weights.
_CACHE_SUBDIR = "models"
# Arrays shown in the error for a weights file of another architecture.
_MAX_LISTED_DIFFERENCES = 3


class WeightsUnavailableError(FileNotFoundError, RuntimeError):
    """ImageNet weights that are not in the Keras cache and cannot be
    downloaded (e.g. on a machine without internet access).

    A `RuntimeError` (the arguments are fine, the machine lacks the file) and
    a `FileNotFoundError` (the weights file is missing), which the
    `keras-cvlec` command reports as a one-line message.
    """


def _imagenet_weights_file(application_name, include_top):
    """(URL, file name) of the ImageNet weights that keras.applications
    downloads for `application_name`, e.g. `"ResNet50V2"` or
    `"ConvNeXtTiny"`, with or without the classifier."""
    suffix = "" if include_top else "_notop"
    if application_name.startswith(_CONVNEXT_APPLICATION):
        variant = application_name[len(_CONVNEXT_APPLICATION):].lower()
        folder, file_name = "convnext", f"convnext_{variant}{suffix}.h5"
    else:
        folder = "resnet"
        file_name = (
            f"{application_name.lower()}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
        )
    return f"{_KERAS_APPLICATIONS_URL}{folder}/{file_name}", file_name


def _keras_home():
    """`$KERAS_HOME`, by default `~/.keras`, as Keras reads it."""
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def fetch_imagenet_weights(application_name, include_top):
    """Downloads the ImageNet weights of `keras.applications.<application_name>`
    into the Keras cache, unless they are there already; the builders call it
    before building anything, so that a machine without internet access gets
    a `WeightsUnavailableError` at once. (keras.applications checks the
    file's hash when it loads it.)

    Returns:
        The path of the cached file.
    """
    url, file_name = _imagenet_weights_file(application_name, include_top)
    home = _keras_home()
    try:
        return keras.utils.get_file(file_name, url, cache_dir=home, cache_subdir=_CACHE_SUBDIR)
    # A failed download raises a bare `Exception` ("URL fetch failure ...").
    except Exception as error:
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of keras.applications."
            f"{application_name} from {url} ({error}). Keras caches downloaded "
            f"weights in {os.path.join(home, _CACHE_SUBDIR)} (set KERAS_HOME to "
            f"move it): on a machine without internet access, copy the file "
            f"{file_name} there. Or load a local file with "
            f"weights='path/to/file.weights.h5', saved with `model.save_weights` "
            f"from a model built with weights='imagenet'."
        ) from error


def load_imagenet_weights(model, application_name, include_top):
    """Builds `keras.applications.<application_name>` with ImageNet weights
    (Keras downloads them once) and transfers them into `model`."""
    application = getattr(keras.applications, application_name)
    source = application(weights="imagenet", include_top=include_top)
    return from_keras_applications(model, source)


def weights_file_shapes(path):
    """{key: shape} of the arrays in the `.weights.h5` file at `path`.

    Raises:
        ValueError: when the file is not a readable HDF5 file (e.g.
            truncated).
    """
    try:
        with h5py.File(path, "r") as file:
            return _array_shapes(file)
    except OSError as error:
        raise ValueError(
            f"Cannot load `weights` file {os.fspath(path)!r}: it is not a readable "
            f"Keras weights file (truncated, or not written by "
            f"`model.save_weights`): {error}"
        ) from None


def load_weights_file(model, path):
    """`model.load_weights(path)`, with errors that name the file.

    Raises:
        ValueError: when the file is not a Keras weights file, or was saved
            from another architecture; the message lists the first weights
            that do not match. The weights of `model` are then undefined.
    """
    path = os.fspath(path)
    file_shapes = weights_file_shapes(path)
    try:
        with warnings.catch_warnings():
            # One warning per layer of the model that the file lacks: the
            # error below says it once.
            warnings.filterwarnings("ignore", "Skipping nested container")
            model.load_weights(path)
    except ValueError as error:
        differences = _differences(model, file_shapes)
        if not differences:
            raise ValueError(
                f"Cannot load `weights` file {path!r} into {model.name!r}: {error}"
            ) from error
        listed = "; ".join(differences[:_MAX_LISTED_DIFFERENCES])
        more = " ..." if len(differences) > _MAX_LISTED_DIFFERENCES else ""
        raise ValueError(
            f"Cannot load `weights` file {path!r} into {model.name!r}: the file "
            f"was saved from another architecture (e.g. another variant, "
            f"width, `num_classes` or `include_top`). {len(differences)} of the "
            f"model's {len(model.weights)} weights do not match: {listed}{more}"
        ) from None
    return model


def _array_shapes(file):
    """{key: shape} of the arrays of an open HDF5 file."""
    shapes = {}

    def visit(key, item):
        if isinstance(item, h5py.Dataset):
            shapes[key] = item.shape

    file.visititems(visit)
    return shapes


def _differences(model, file_shapes):
    """The model's weights that are missing from a weights file or have
    another shape there, in the model's order, as sentences.

    Keras keys a weight in the file by the classes of the layers that hold it
    (`layers/res_net_basic_block_2/...`), not by its path; to map keys to
    weights, each weight is set to its index in `model.weights` and the model
    saved once (this overwrites the model's weights).
    """
    weights = model.weights
    for index, weight in enumerate(weights):
        weight.assign(np.full(weight.shape, index, dtype=weight.dtype))
    with tempfile.TemporaryDirectory() as folder:
        reference = os.path.join(folder, "reference.weights.h5")
        model.save_weights(reference)
        with h5py.File(reference, "r") as file:
            indices = {
                key: int(file[key][(0,) * file[key].ndim]) for key in _array_shapes(file)
            }
    differences = []
    for key, index in sorted(indices.items(), key=lambda item: item[1]):
        weight = weights[index]
        shape = tuple(weight.shape)
        if key not in file_shapes:
            differences.append(f"{weight.path} {shape}: not in the file")
        elif tuple(file_shapes[key]) != shape:
            differences.append(f"{weight.path} {shape}: {tuple(file_shapes[key])} in the file")
    return differences
