"""Fully convolutional networks (Long et al., 2015): FCN-32s, FCN-16s, FCN-8s."""

import keras
from keras import layers, ops

from keras_cvlec.layers import convolution
from keras_cvlec.models.backbones import backbone_features, check_backbone_args
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import model_info, register_model
from keras_cvlec.models.segmentation_head import (
    check_final_activation,
    pad_to_total_stride,
    segmentation_output,
)
from keras_cvlec.utils.validation import (
    check_choice,
    check_positive_int,
    standardize_data_format,
)

__all__ = ["DEFAULT_BACKBONE", "FCN_VARIANTS", "BilinearUpsamplingKernel", "build_fcn"]

# One row a variant: the stride of the finest backbone feature map whose
# scores are fused into those of the coarsest.
FCN_VARIANTS = {
    "32s": 32,
    "16s": 16,
    "8s": 8,
}
DEFAULT_BACKBONE = "resnet50"


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BilinearUpsamplingKernel(keras.initializers.Initializer):
    """Initialises a `Conv2DTranspose` kernel to bilinear interpolation.

    For a kernel of size `2 * f` and stride `f` with `padding="same"`, the
    layer then up-samples each channel by `f` with bilinear interpolation at
    pixel centres (`align_corners=False`), away from the borders (FCN's
    "deconvolution filter initialised to bilinear interpolation"). The
    kernel `(kh, kw, out_channels, in_channels)` is the outer product of two
    1D triangles `1 - |i - center| / f`, on the channel diagonal (output
    channel c reads input channel c only), zero elsewhere.

    Example:

    >>> layer = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same",
    ...     use_bias=False, kernel_initializer=BilinearUpsamplingKernel())
    """

    def __call__(self, shape, dtype=None):
        if len(shape) != 4:
            raise ValueError(
                "BilinearUpsamplingKernel needs a 4D kernel shape (kh, kw, out, in). "
                f"Received: shape={tuple(shape)}"
            )
        kh, kw, out_channels, in_channels = shape
        kernel = ops.outer(_triangle(kh), _triangle(kw))
        diagonal = ops.eye(out_channels, in_channels, dtype="float32")
        kernel = kernel[:, :, None, None] * diagonal[None, None, :, :]
        return ops.cast(kernel, dtype or keras.config.floatx())

    def get_config(self):
        return {}


def _triangle(size):
    """The 1D bilinear filter of `size` taps (Caffe's `get_upsampling_weight`)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = ops.arange(size, dtype="float32")
    return 1.0 - ops.abs(taps - center) / factor


def build_fcn(
    *,
    backbone=DEFAULT_BACKBONE,
    variant="32s",
    num_classes=21,
    input_shape=DEFAULT_INPUT_SHAPE,
    backbone_weights=None,
    freeze_backbone=False,
    final_activation=None,
    data_format=None,
    name=None,
):
    """Builds a fully convolutional network (FCN) as a functional `keras.Model`.

    The backbone is a headless ResNet or ConvNeXt of this package, called as
    one nested model named `backbone` that returns its `stage{k}_output`
    feature maps (strides 4, 8, 16, 32 for k = 1 ... 4: the registry's
    `feature_strides`). A 1x1 convolution `score_stage4` gives class scores
    at stride 32. Then, as in Long et al. (2015):

    - `"32s"`: one `Conv2DTranspose` `upscore32` (kernel 64, stride 32)
      up-samples the scores to the input's resolution.
    - `"16s"`: a 2x transpose convolution (kernel 4, stride 2)
      `upscore2_stage4` brings them to stride 16, where `fuse_stage3` adds
      the 1x1 scores `score_stage3` of stage 3; `upscore16` (kernel 32,
      stride 16) up-samples the sum.
    - `"8s"`: the same once more with stage 2 (`upscore2_stage3`,
      `score_stage2`, `fuse_stage2`) at stride 8, then `upscore8` (kernel
      16, stride 8).

    As in the paper, the score convolutions start at zero (so a fused net
    starts as the coarser one) and the transpose convolutions (no bias, all
    learned) start as bilinear interpolation (`BilinearUpsamplingKernel`).
    The paper's VGG-16 backbone is replaced by the ResNet/ConvNeXt stages,
    and its crop offsets by padding: inputs of any height and width (at
    least 32) are padded to a multiple of 32 (`pad`) and the output is
    cropped back (`crop`), so the output always has the input's height and
    width.

    Args:
        backbone: a registered ResNet or ConvNeXt name, e.g. `"resnet50"`,
            `"resnet18"` or `"convnext_tiny"` (`keras_cvlec.list_models()`).
        variant: `"32s"`, `"16s"` or `"8s"`: the stride of the finest
            feature map fused into the scores.
        num_classes: number of classes (21 for PASCAL VOC).
        input_shape: image shape in `data_format` order; height and width
            `None` or at least 32.
        backbone_weights: `None`, `"imagenet"` or a `.weights.h5` path for
            the backbone (see `build_resnet` / `build_convnext`).
        freeze_backbone: whether the backbone's weights are frozen (its batch
            norms then also run in inference mode).
        final_activation: `None` (logits), `"softmax"` (over the channel axis
            in either data format), `"sigmoid"`, ...
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to e.g. `"fcn8s_resnet50"`.

    Returns:
        A `keras.Model` mapping images to `(batch, height, width,
        num_classes)` scores (channels first under `channels_first`).

    Example:

    >>> model = keras_cvlec.build_fcn(backbone="resnet18", variant="8s",
    ...     num_classes=5)
    >>> model(keras.ops.ones((1, 37, 53, 3))).shape
    (1, 37, 53, 5)
    """
    check_choice("variant", variant, tuple(FCN_VARIANTS))
    check_positive_int("num_classes", num_classes)
    check_final_activation(final_activation)
    data_format = standardize_data_format(data_format)
    inputs = image_input(input_shape, data_format, min_size=1)
    check_backbone_args(
        backbone,
        backbone_weights,
        freeze_backbone,
        channels=input_channels(inputs, data_format),
        input_shape=input_shape,
    )
    # The strides of the fused feature maps, from coarse to fine, e.g. (32, 16, 8).
    feature_strides = model_info(backbone).feature_strides
    strides = tuple(s for s in reversed(feature_strides) if s >= FCN_VARIANTS[variant])
    stages = {stride: feature_strides.index(stride) + 1 for stride in strides}
    x = pad_to_total_stride(
        inputs,
        strides[0],
        data_format,
        cause=f"The total stride of `backbone`={backbone!r}",
        input_shape=input_shape,
    )
    features = backbone_features(
        x,
        backbone,
        strides=strides,
        weights=backbone_weights,
        freeze=freeze_backbone,
        data_format=data_format,
        name="backbone",
    )
    features = dict(zip(strides, features))

    def score(stride):
        return convolution.Conv2D(
            num_classes,
            1,
            kernel_initializer="zeros",
            data_format=data_format,
            name=f"score_stage{stages[stride]}",
        )(features[stride])

    def upscore(tensor, factor, name, dtype=None):
        return convolution.Conv2DTranspose(
            num_classes,
            2 * factor,
            strides=factor,
            padding="same",
            use_bias=False,
            kernel_initializer=BilinearUpsamplingKernel(),
            data_format=data_format,
            dtype=dtype,
            name=name,
        )(tensor)

    y = score(strides[0])
    for coarser, finer in zip(strides, strides[1:]):
        y = upscore(y, coarser // finer, f"upscore{coarser // finer}_stage{stages[coarser]}")
        y = layers.Add(name=f"fuse_stage{stages[finer]}")([y, score(finer)])
    y = upscore(y, strides[-1], f"upscore{strides[-1]}", dtype="float32")
    y = segmentation_output(y, inputs, final_activation, data_format)
    return keras.Model(inputs, y, name=name or f"fcn{variant}_{backbone}")


for _variant in FCN_VARIANTS:
    register_model(
        f"fcn{_variant}",
        build_fcn,
        task="segmentation",
        family="fcn",
        defaults={"variant": _variant},
    )
