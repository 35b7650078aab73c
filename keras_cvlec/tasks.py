"""The tasks a model predicts, shared by the model registry, the data loaders,
the training run and its reports."""

TASKS = ("classification", "segmentation", "reconstruction")
"""Image labels, per-pixel class masks, or the input image itself."""

TRAINABLE_TASKS = ("classification", "segmentation")
"""The tasks `keras_cvlec.training.train` and the data loaders serve."""

__all__ = ["TASKS", "TRAINABLE_TASKS"]
