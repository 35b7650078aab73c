"""keras_cvlec: computer-vision layers and model builders for Keras 3."""

from keras_cvlec import data, export, layers, losses, metrics, training, utils, weights
from keras_cvlec.models.autoencoder import build_autoencoder
from keras_cvlec.models.convnext import build_convnext
from keras_cvlec.models.fcn import build_fcn
from keras_cvlec.models.registry import build_model, list_models, model_info
from keras_cvlec.models.resnet import build_resnet
from keras_cvlec.models.segnet import build_segnet
from keras_cvlec.models.unet import build_unet

__version__ = "0.1.0"

__all__ = [
    "build_autoencoder",
    "build_convnext",
    "build_fcn",
    "build_model",
    "build_resnet",
    "build_segnet",
    "build_unet",
    "data",
    "export",
    "layers",
    "list_models",
    "losses",
    "metrics",
    "model_info",
    "training",
    "utils",
    "weights",
]
