"""Deprecated names of `keras_cvlec.layers.convolution`'s layers.

`BiasFirstConv2D`, `BiasFirstDepthwiseConv2D` and `BiasFirstConv2DTranspose`
are now `Conv2D`, `DepthwiseConv2D` and `Conv2DTranspose`. `.keras` files
saved before the rename name the old classes, and address the weights of
each layer in a list of layers (a functional model's, or a block's) by its
class name (`layers/bias_first_conv2d_3/vars`). So every old name stays
registered, as a subclass of its new layer that adds nothing but the name:
old files deserialize to instances of the new layers and find their
weights. Getting an old name from Python warns.
"""

import keras

from keras_cvlec.layers import convolution
from keras_cvlec.utils.deprecation import moved_names

__all__ = ["DEPRECATED_NAMES", "LEGACY_CLASSES"]

_RENAMED = {
    "BiasFirstConv2D": convolution.Conv2D,
    "BiasFirstDepthwiseConv2D": convolution.DepthwiseConv2D,
    "BiasFirstConv2DTranspose": convolution.Conv2DTranspose,
}


def _legacy_class(old_name, layer_class):
    legacy_class = type(
        old_name,
        (layer_class,),
        {
            "__module__": __name__,
            "__doc__": f"Deprecated: `keras_cvlec.layers.{layer_class.__name__}` "
            "under its name before issue 14, for files saved with that name.",
        },
    )
    return keras.saving.register_keras_serializable(package="keras_cvlec")(legacy_class)


# {old name: the subclass registered as "keras_cvlec>old name"}.
LEGACY_CLASSES = {
    old_name: _legacy_class(old_name, layer_class) for old_name, layer_class in _RENAMED.items()
}


# Getting an old name from Python warns: {old name: (new name, legacy class)}.
DEPRECATED_NAMES = {
    old_name: (f"keras_cvlec.layers.{layer_class.__name__}", LEGACY_CLASSES[old_name])
    for old_name, layer_class in _RENAMED.items()
}
__getattr__ = moved_names(__name__, DEPRECATED_NAMES)
