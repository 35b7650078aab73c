"""Weights of keras_cvlec models: the builders' `weights` argument, the
ImageNet weights of keras.applications (download and transfer) and
`.weights.h5` files.

`from_keras_applications` copies a keras.applications model's weights into
a keras_cvlec model. Layers are matched by name: each family's table of
keras.applications names sits beside the family
(`keras_cvlec/models/resnet_weights.py`, `convnext_weights.py`), the family
of a model being the type of its blocks; here every weight shape is checked,
and any layer left over on either side is an error. Weights are copied
unchanged, except depthwise kernels: keras.applications ConvNeXt implements
them as `Conv2D(groups=C)` with kernels shaped `(k, k, 1, C)`, keras_cvlec as
`DepthwiseConv2D` with `(k, k, C, 1)`; the same numbers in the same order, so
the conversion is a swap of the last two axes.

Also here: the download of those ImageNet weights (`fetch_imagenet_weights`,
with a `WeightsUnavailableError` that says what to do offline), the loading
of a `.weights.h5` file into a builder's model (`load_weights_file`, with
errors that name the file and what does not match), and the checks and
loading behind the builders' `weights` argument (`check_weights_arg`,
`prepare_imagenet_weights`, `load_weights_arg`).
"""

import os
import tempfile
import warnings

import h5py
import keras
import numpy as np

from keras_cvlec.models import convnext_weights, resnet_weights
from keras_cvlec.utils.validation import check_imagenet_channels

__all__ = [
    "WeightsUnavailableError",
    "fetch_imagenet_weights",
    "from_keras_applications",
    "load_imagenet_weights",
    "load_weights_file",
    "weights_file_shapes",
]

# The families whose keras.applications weights transfer: modules with
# BLOCK_CLASS, APPLICATION_PREFIX, layer_pairs, skippable_top, weights_file.
_FAMILIES = (resnet_weights, convnext_weights)
_CLASSIFIER_NAME = "predictions"
IMAGENET_CLASSES = 1000


# --------------------------------------------------------------------------
# The builders' `weights` argument
# --------------------------------------------------------------------------


def check_weights_arg(
    weights, *, imagenet_source, description, available, include_top, num_classes
):
    """Validates a builder's `weights` before anything is built or downloaded.

    `weights` is `None` (random initialisation), `"imagenet"` (the weights
    of a keras.applications model) or the path (str or `os.PathLike`) of a
    `.weights.h5` file saved from the same architecture.

    Args:
        weights: the builder's `weights` argument.
        imagenet_source: name of the `keras.applications` model whose ImageNet
            weights fit the requested architecture, or None if there is none.
        description: the requested architecture, for the error message
            (e.g. `"variant='resnet18', version='v1'"`).
        available: the architectures that have ImageNet weights, for the
            error message.
        include_top: the builder's `include_top`.
        num_classes: the builder's `num_classes`.

    Returns:
        `imagenet_source` when `weights == "imagenet"`, else None.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        if imagenet_source is None:
            raise ValueError(
                f"No ImageNet weights for {description}. Available: {', '.join(available)}."
            )
        if include_top and num_classes != IMAGENET_CLASSES:
            raise ValueError(
                f"`weights='imagenet'` with `include_top=True` needs "
                f"num_classes={IMAGENET_CLASSES}. Received: num_classes={num_classes}"
            )
        return imagenet_source
    if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".weights.h5"):
        if not os.path.exists(weights):
            raise ValueError(f"`weights` file not found: {os.fspath(weights)!r}")
        weights_file_shapes(weights)  # a readable HDF5 file
        return None
    raise ValueError(
        f"`weights` must be None, 'imagenet' or the path of a '.weights.h5' "
        f"file. Received: weights={weights!r}"
    )


def prepare_imagenet_weights(application, channels, input_shape, include_top):
    """Checks that the model takes RGB images (3 `channels`) and downloads the
    ImageNet weights of `application`, before the model is built."""
    check_imagenet_channels("weights", "imagenet", channels, input_shape)
    fetch_imagenet_weights(application, include_top)


def load_weights_arg(model, weights, imagenet_source, include_top):
    """Loads what `check_weights_arg` accepted into the built `model`."""
    if imagenet_source is not None:
        load_imagenet_weights(model, imagenet_source, include_top=include_top)
    elif weights is not None:
        load_weights_file(model, weights)
    return model


# --------------------------------------------------------------------------
# keras.applications weights
# --------------------------------------------------------------------------


def _model_family(model):
    """The family module of a keras_cvlec model, by the type of its blocks."""
    for family in _FAMILIES:
        if any(isinstance(layer, family.BLOCK_CLASS) for layer in model.layers):
            return family
    raise ValueError(
        f"Cannot transfer keras.applications weights into {model.name!r}: only "
        f"keras_cvlec ResNets and ConvNeXts (build_resnet, build_convnext) take "
        f"them, and the model has neither's blocks."
    )


def _application_family(application_name):
    """The family module of a keras.applications model name."""
    for family in _FAMILIES:
        if application_name.startswith(family.APPLICATION_PREFIX):
            return family
    prefixes = ", ".join(f"{family.APPLICATION_PREFIX}..." for family in _FAMILIES)
    raise ValueError(
        f"No keras_cvlec model takes the weights of keras.applications."
        f"{application_name}: supported are {prefixes}."
    )


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
        model: a keras_cvlec ResNet or ConvNeXt.
        source_model: the keras.applications model, built with any weights.
            ConvNeXt layer names start with the source model's name, as
            keras.applications builds them.

    Returns:
        `model`, with the source's weights.

    Raises:
        ValueError: when `model` is neither a ResNet nor a ConvNeXt, a layer
            is missing on either side or a weight shape differs (e.g. a
            different depth, width, version or `num_classes`).

    Example:

    >>> source = keras.applications.ResNet50(weights=None)
    >>> model = keras_cvlec.build_resnet("resnet50")
    >>> _ = keras_cvlec.weights.from_keras_applications(model, source)
    """
    family = _model_family(model)
    prefix = source_model.name
    source_layers = {layer.name: layer for layer in _flat_layers(source_model)}
    assignments = []
    for target, source_name in family.layer_pairs(model, prefix):
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
    headless = not any(layer.name == _CLASSIFIER_NAME for layer in model.layers)
    skippable = family.skippable_top(source_model, prefix) if headless else set()
    leftover = [
        name for name, layer in source_layers.items() if layer.weights and name not in skippable
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
# `{_KERAS_APPLICATIONS_URL}{folder}/{file name}` (each family's
# `weights_file`) into `$KERAS_HOME/{_CACHE_SUBDIR}`.
_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
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
    folder, file_name = _application_family(application_name).weights_file(
        application_name, include_top
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


# --------------------------------------------------------------------------
# .weights.h5 files
# --------------------------------------------------------------------------


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
            indices = {key: int(file[key][(0,) * file[key].ndim]) for key in _array_shapes(file)}
    differences = []
    for key, index in sorted(indices.items(), key=lambda item: item[1]):
        weight = weights[index]
        shape = tuple(weight.shape)
        if key not in file_shapes:
            differences.append(f"{weight.path} {shape}: not in the file")
        elif tuple(file_shapes[key]) != shape:
            differences.append(f"{weight.path} {shape}: {tuple(file_shapes[key])} in the file")
    return differences
