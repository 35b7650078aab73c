"""Model builders. Importing this package registers every model, so the
registry is complete whichever module a caller imports first."""

from keras_cvlec.models import autoencoder, convnext, fcn, resnet, segnet, unet  # noqa: F401
