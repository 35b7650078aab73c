"""Analytic compute cost of a model: multiply-accumulates of one forward pass.

`count_macs(model, input_shape=None)` counts, layer by layer, the
multiply-accumulates (MACs) with weights of one forward pass of one image:
convolutions and linear layers only. That is the convention of the published
figures this package is checked against: torchvision's "GFLOPS" column
(ResNet-50: 4.09 G) and the ConvNeXt paper's "FLOPs" (ConvNeXt-T: 4.5 G) are
reproduced, to their printed precision, by convolution and linear layers
alone.

How it works: the model is traced once on the backend's symbolic tensors of
the full shape (batch 1), through the public `keras.Operation` tracing
(`compute_output_spec` runs `call` on TF graph placeholders, JAX abstract
values or torch meta tensors; no arithmetic is done). While it runs,
`keras.layers.Layer.__call__` is wrapped so that every layer call (also the
calls a custom block makes to its sublayers inside its own `call`, and those
of nested functional models) is recorded with its input and output shapes.
Keras stores no input shapes of nested sublayers and has no public hook on
layer calls, so this wrapping, in a context manager that always restores the
original method, is the only way to see them. Only calls made by the thread
that runs `count_macs` are recorded; other threads go straight through.
"""

import contextlib
import functools
import importlib
import inspect
import math
import threading

import keras

from keras_cvlec.utils.deprecation import moved_names
from keras_cvlec.utils.validation import is_int

__all__ = ["count_macs", "register_macs"]

# ---------------------------------------------------------------------------
# Per-layer rules: `rule(layer, call) -> int`, `call` a `_LayerCall`.
# ---------------------------------------------------------------------------


def _conv_macs(layer, call):
    # Kernel shape: kernel_size + (in_channels // groups, filters); every
    # output element is a dot product of kernel_size * in_channels // groups.
    return math.prod(call.output_shape) * math.prod(layer.kernel.shape[:-1])


def _depthwise_conv_macs(layer, call):
    # Every output element (in_channels * depth_multiplier channels) is a dot
    # product over the kernel window of one input channel.
    return math.prod(call.output_shape) * math.prod(layer.kernel_size)


def _separable_conv_macs(layer, call):
    depthwise_channels = math.prod(layer.depthwise_kernel.shape[-2:])
    positions = math.prod(call.output_shape) // layer.filters
    depthwise = positions * depthwise_channels * math.prod(layer.kernel_size)
    pointwise = positions * depthwise_channels * layer.filters
    return depthwise + pointwise


def _conv_transpose_macs(layer, call):
    # Every input element is multiplied by a kernel_size * filters slice.
    return math.prod(call.input_shape) * math.prod(layer.kernel_size) * layer.filters


def _dense_macs(layer, call):
    # Applied along the last axis: prod(leading dims) * in * out.
    return math.prod(call.input_shape) * layer.units


def _einsum_dense_macs(layer, call):
    # An einsum costs the product of the sizes of all its distinct indices.
    equation = layer.equation.replace(" ", "")
    operands, _ = equation.split("->")
    input_spec, kernel_spec = operands.split(",")
    sizes = {}
    for spec, shape in (
        (input_spec, call.input_shape),
        (kernel_spec, tuple(layer.kernel.shape)),
    ):
        labels = list(spec.replace("...", "."))
        if "." in labels:
            at = labels.index(".")
            broadcast = len(shape) - (len(labels) - 1)
            labels[at : at + 1] = [f"...{i}" for i in range(broadcast)]
        for label, size in zip(labels, shape):
            sizes[label] = size
    return math.prod(sizes.values())


def _no_macs(layer, call):
    return 0


# This package's weighted layers that multiply by no weight matrix: per-channel
# scales and shifts. Imported when counting (keras_cvlec.layers imports
# keras_cvlec.utils); a name missing here leaves its layer unknown to the
# counter, which then raises an error naming the class.
_PACKAGE_ZERO_MAC_LAYERS = (
    ("keras_cvlec.layers.layer_scale", "LayerScale"),
    ("keras_cvlec.layers.channel_layer_normalization", "ChannelLayerNormalization"),
)


def _package_zero_mac_classes():
    classes = []
    for module_name, class_name in _PACKAGE_ZERO_MAC_LAYERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        layer_class = getattr(module, class_name, None)
        if layer_class is not None:
            classes.append(layer_class)
    return tuple(classes)


def _builtin_rules():
    """(layer classes, rule) pairs, the weighted zero-MAC layers last."""
    layers = keras.layers
    return [
        ((layers.Conv1D, layers.Conv2D, layers.Conv3D), _conv_macs),
        ((layers.DepthwiseConv1D, layers.DepthwiseConv2D), _depthwise_conv_macs),
        ((layers.SeparableConv1D, layers.SeparableConv2D), _separable_conv_macs),
        (
            (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose),
            _conv_transpose_macs,
        ),
        ((layers.Dense,), _dense_macs),
        ((layers.EinsumDense,), _einsum_dense_macs),
        (
            (
                layers.BatchNormalization,
                layers.LayerNormalization,
                layers.GroupNormalization,
                layers.RMSNormalization,
                layers.Normalization,
                layers.PReLU,
                layers.Embedding,
            )
            + _package_zero_mac_classes(),
            _no_macs,
        ),
    ]


_USER_RULES = {}


def register_macs(layer_class, rule):
    """Teaches `count_macs` the cost of a custom weighted layer class.

    Args:
        layer_class: a `keras.layers.Layer` subclass (its subclasses match
            too).
        rule: `rule(layer, input_shape, output_shape) -> int`, the
            multiply-accumulates of one call; the shapes are tuples of ints
            that include the batch dimension (which is 1).
    """
    is_class = isinstance(layer_class, type)
    if not (is_class and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(
            f"`layer_class` must be a keras.layers.Layer subclass. Received: "
            f"layer_class={layer_class!r}"
        )
    if not callable(rule):
        raise TypeError(f"`rule` must be callable. Received: rule={rule!r}")
    _USER_RULES[layer_class] = rule


def _find_rule(layer, builtin_rules):
    for layer_class in type(layer).__mro__:
        if layer_class in _USER_RULES:
            user_rule = _USER_RULES[layer_class]
            return lambda layer, call: int(user_rule(layer, call.input_shape, call.output_shape))
    for classes, rule in builtin_rules:
        if isinstance(layer, classes):
            return rule
    return None


# ---------------------------------------------------------------------------
# Recording the layer calls of one symbolic forward pass.
# ---------------------------------------------------------------------------


class _LayerCall:
    """One call of one layer: its shapes and the layer calls made inside it."""

    __slots__ = ("layer", "input_shape", "output_shape", "children", "done")

    def __init__(self, layer, input_shape):
        self.layer = layer
        self.input_shape = input_shape
        self.output_shape = None
        self.children = []
        self.done = False


def _static_dim(dim):
    try:
        return int(dim)
    except (TypeError, ValueError):  # None, or a symbolic dimension
        return None


def _first_shape(structure):
    """The static shape (a tuple, None for unknown dims) of the first tensor."""
    for item in keras.tree.flatten(structure):
        if hasattr(item, "shape") and hasattr(item, "dtype"):
            return tuple(_static_dim(d) for d in item.shape)
    return None


_RECORDING_LOCK = threading.RLock()


@contextlib.contextmanager
def _recording_layer_calls():
    """Wraps `keras.layers.Layer.__call__` to record calls; always restores it.

    Yields the list of the top-level `_LayerCall`s of this thread.
    """
    layer_class = keras.layers.Layer
    with _RECORDING_LOCK:
        original_call = layer_class.__dict__["__call__"]
        roots, stack = [], []
        thread = threading.get_ident()

        @functools.wraps(original_call)
        def recording_call(self, *args, **kwargs):
            if threading.get_ident() != thread:
                return original_call(self, *args, **kwargs)
            record = _LayerCall(self, _first_shape((args, kwargs)))
            (stack[-1].children if stack else roots).append(record)
            stack.append(record)
            try:
                outputs = original_call(self, *args, **kwargs)
            finally:
                stack.pop()
            record.output_shape = _first_shape(outputs)
            record.done = True
            return outputs

        layer_class.__call__ = recording_call
        try:
            yield roots
        finally:
            layer_class.__call__ = original_call


class _ForwardPass(keras.Operation):
    """Runs `fn` under the backend's symbolic tracing (`compute_output_spec`)."""

    def __init__(self, fn):
        super().__init__(name="count_macs_forward_pass")
        self.fn = fn

    def call(self, *inputs):
        return self.fn(*inputs)


# ---------------------------------------------------------------------------
# Counting.
# ---------------------------------------------------------------------------

_KNOWN_LAYERS = (
    "Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1D/2D/3DTranspose, "
    "Dense and EinsumDense (counted); BatchNormalization, LayerNormalization, "
    "GroupNormalization, RMSNormalization, Normalization, PReLU, Embedding, "
    "keras_cvlec LayerScale and ChannelLayerNormalization (weighted, no "
    "multiply-accumulates)"
)


def _describe(layer):
    return f"layer {layer.name!r} of class {type(layer).__name__}"


def _weight_list(weights):
    return ", ".join(f"{w.name} {tuple(w.shape)}" for w in weights)


def _count_call(call, builtin_rules):
    layer = call.layer
    rule = _find_rule(layer, builtin_rules)
    if rule is _no_macs:
        return 0
    if rule is not None:
        shapes = (call.input_shape, call.output_shape)
        if any(shape is None or None in shape for shape in shapes):
            raise ValueError(
                f"count_macs cannot count {_describe(layer)}: the shapes of its "
                f"input {call.input_shape} or output {call.output_shape} are "
                f"not static in the traced forward pass."
            )
        return int(rule(layer, call))
    children = [child for child in call.children if child.done]
    if not children:
        if layer.weights:
            raise ValueError(
                f"count_macs cannot count {_describe(layer)}: it has weights "
                f"({_weight_list(layer.weights)}) but is not a layer type it "
                f"knows ({_KNOWN_LAYERS}), nor calls sublayers that hold them. "
                f"Teach it the layer's cost with "
                f"keras_cvlec.utils.flops.register_macs({type(layer).__name__}, "
                f"rule)."
            )
        return 0
    # A container: its sublayers' calls are counted. Weights it holds itself
    # (not through a called sublayer) are allowed only as vectors (per-channel
    # scales and biases, applied element-wise): a matrix or kernel could be a
    # product nobody counts.
    total = sum(_count_call(child, builtin_rules) for child in children)
    covered = {id(w) for child in children for w in child.layer.weights}
    uncounted = [w for w in layer.weights if id(w) not in covered and len(w.shape) >= 2]
    if uncounted:
        raise ValueError(
            f"count_macs cannot count {_describe(layer)}: it uses weights of "
            f"rank >= 2 that belong to no sublayer it calls "
            f"({_weight_list(uncounted)}). Known layer types: {_KNOWN_LAYERS}. "
            f"Teach it the layer's cost with "
            f"keras_cvlec.utils.flops.register_macs({type(layer).__name__}, "
            f"rule)."
        )
    return total


# ---------------------------------------------------------------------------
# Input shapes.
# ---------------------------------------------------------------------------


def _reference_inputs(model):
    """The model's symbolic inputs (KerasTensors), or None when unknown."""
    try:
        if isinstance(model, keras.Model):
            inputs = model.inputs
        else:
            inputs = [model.input]
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    inputs = keras.tree.flatten(inputs)
    if not all(isinstance(x, keras.KerasTensor) for x in inputs):
        return None
    return inputs


def _is_dim(value):
    return is_int(value) and value >= 1


def _check_one_shape(shape, reference, input_shape):
    if not isinstance(shape, (tuple, list)) or not all(_is_dim(d) for d in shape):
        raise ValueError(
            f"`input_shape` must be a tuple of ints >= 1 without the batch "
            f"dimension, e.g. (224, 224, 3). Received: input_shape={input_shape!r}"
        )
    shape = tuple(int(d) for d in shape)
    if reference is None:
        return shape
    expected = tuple(reference.shape[1:])
    if len(shape) != len(expected):
        raise ValueError(
            f"`input_shape` must have {len(expected)} entries (the model's input "
            f"is {expected} without the batch dimension). Received: "
            f"input_shape={input_shape!r}"
        )
    for given, known in zip(shape, expected):
        if known is not None and given != known:
            raise ValueError(
                f"`input_shape` does not match the model's input {expected} "
                f"(in its data format): a known dimension differs. Received: "
                f"input_shape={input_shape!r}"
            )
    return shape


def _resolve_shapes(model, references, input_shape):
    """One shape tuple (no batch dimension) per model input."""
    num_inputs = 1 if references is None else len(references)
    if input_shape is None:
        if references is None:
            raise ValueError(
                f"`input_shape` is required: the input shape of "
                f"{_describe(model)} is unknown. Pass it without the batch "
                f"dimension, e.g. input_shape=(224, 224, 3)."
            )
        shapes = [tuple(x.shape[1:]) for x in references]
        if any(d is None for shape in shapes for d in shape):
            example = [tuple(224 if d is None else d for d in shape) for shape in shapes]
            example = example[0] if num_inputs == 1 else example
            raise ValueError(
                f"`input_shape` is required: the model's input has unknown "
                f"dimensions ({', '.join(str(s) for s in shapes)} without the "
                f"batch dimension). Pass e.g. input_shape={example}."
            )
        return shapes
    if num_inputs == 1:
        reference = None if references is None else references[0]
        return [_check_one_shape(input_shape, reference, input_shape)]
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != num_inputs:
        raise ValueError(
            f"`input_shape` must be a list of {num_inputs} shapes, one per model "
            f"input. Received: input_shape={input_shape!r}"
        )
    return [
        _check_one_shape(shape, reference, input_shape)
        for shape, reference in zip(input_shape, references)
    ]


def _accepts_training(layer):
    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------
# The public function.
# ---------------------------------------------------------------------------


def count_macs(model, input_shape=None):
    """Multiply-accumulates of one forward pass of one image, counted analytically.

    A multiply-accumulate (MAC) is one multiplication of an activation by a
    weight and its addition into a sum. The published tables call this count
    "FLOPs": torchvision's "GFLOPS" column (ResNet-50: 4.09 G) and the
    ConvNeXt paper (ConvNeXt-T: 4.5 G) report it, as fvcore counts it.

    Counted (per call, a layer called twice is counted twice; `out` and `in`
    are the numbers of elements of the layer's output and input):

    - `Conv1D/2D/3D`: `out * prod(kernel_size) * in_channels / groups`
      (= `out_h * out_w * kh * kw * (cin / groups) * cout` in 2D; strides,
      dilation and padding act through the output size).
    - `DepthwiseConv1D/2D`: `out * prod(kernel_size)`
      (= `out_h * out_w * kh * kw * cin * depth_multiplier`).
    - `SeparableConv1D/2D`: its depthwise part plus its 1x1 pointwise part.
    - `Conv1D/2D/3DTranspose`: `in * prod(kernel_size) * filters`
      (= `in_h * in_w * kh * kw * cin * cout`).
    - `Dense` (on inputs of any rank): `in * units`
      (= `prod(leading dims) * in_features * units`).
    - `EinsumDense`: the product of the sizes of all einsum indices.

    Not counted (they are not products with weights, or are folded into the
    convolution at inference): biases, normalisation layers
    (`BatchNormalization`, `LayerNormalization`, `GroupNormalization`,
    `RMSNormalization`, `Normalization`, keras_cvlec's
    `ChannelLayerNormalization`), `LayerScale`, `PReLU`,
    activations, pooling (also global pooling), padding, resizing,
    element-wise additions and multiplications, `Embedding` lookups, dropout
    and stochastic depth, and products of two activations (attention scores)
    made with `keras.ops` outside a counted layer.

    Layers are found at any depth: inside nested functional models and inside
    custom block layers whose `call` calls sublayers (e.g.
    `ResNetBottleneckBlock`); the model is traced once symbolically (no
    arithmetic) at batch size 1, in inference mode. Both data formats give the
    same count.

    A layer with weights that is none of the above and calls no sublayers
    holding them raises a `ValueError` naming its class, as does a block that
    holds a weight of rank >= 2 outside its called sublayers: nothing with
    weights is silently counted as free. `register_macs` in this module adds
    a rule for a custom layer class.

    Args:
        model: a `keras.Model` or `keras.layers.Layer`.
        input_shape: the shape of one input without the batch dimension, in
            the model's data format (e.g. `(224, 224, 3)`), or a list of
            shapes for a model with several inputs. Required when the model's
            input has unknown (`None`) dimensions or the layer's input shape
            is unknown; it must agree with the known dimensions.

    Returns:
        An int: the multiply-accumulates of one forward pass of one image.

    Raises:
        ValueError: unknown input dimensions and no `input_shape`, an
            `input_shape` of the wrong rank or channels, or a weighted layer
            the counter does not know.

    Example:

    >>> model = keras_cvlec.build_resnet("resnet50", version="v1.5")
    >>> round(count_macs(model, input_shape=(224, 224, 3)) / 1e9, 2)
    4.09
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"`model` must be a keras.Model or keras.layers.Layer. Received: "
            f"model={model!r} of type {type(model).__name__}"
        )
    references = _reference_inputs(model)
    shapes = _resolve_shapes(model, references, input_shape)
    if references is not None:
        dtypes = [x.dtype for x in references]
    else:
        dtypes = [model.input_dtype] * len(shapes)
    specs = [keras.KerasTensor((1,) + shape, dtype=dtype) for shape, dtype in zip(shapes, dtypes)]

    def inputs_of(tensors):
        return tensors[0] if len(tensors) == 1 else list(tensors)

    if not model.built:
        model(inputs_of(specs))  # Builds the weights, outside the trace.

    call_kwargs = {"training": False} if _accepts_training(model) else {}

    def forward(*tensors):
        return model(inputs_of(tensors), **call_kwargs)

    with _recording_layer_calls() as roots:
        _ForwardPass(forward).compute_output_spec(*specs)
    # A backend may retry a failed trace (torch: meta device, then CPU): the
    # last complete call of the model is the one to count.
    completed = [call for call in roots if call.done and call.layer is model]
    if not completed:
        raise RuntimeError(f"count_macs could not trace a call of {_describe(model)}.")
    return _count_call(completed[-1], _builtin_rules())


__getattr__ = moved_names(__name__, {"count_flops": ("keras_cvlec.utils.count_macs", count_macs)})
