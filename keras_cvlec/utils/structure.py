"""Models built for their structure alone: no initial weights drawn."""

import contextlib

import keras

__all__ = ["structure_only"]


@contextlib.contextmanager
def structure_only():
    """Builds inside this block give models whose weights have shapes but no
    values: their layers, output shapes, `count_params()` and `count_macs`
    are the real model's, without the cost of drawing initial weights
    (ConvNeXt-B: 8.3 s on JAX, 2.7 s on TensorFlow on 2 CPU cores here;
    0.9 and 1.1 s without).

    Such a model is for inspecting only: its weights hold no values (a read
    computes their initial values anew), so do not call, train or save it.
    The block ends with `keras.backend.clear_session(free_memory=False)`: it
    drops the pending weights from Keras's global state, so that no later
    stateless scope initialises them, and skips the garbage collection (0.3-1 s
    with the backends' objects in memory). The models built in the block stay
    inspectable.

    Example:

    >>> with structure_only():
    ...     model = keras_cvlec.build_convnext("base")
    >>> f"{model.count_params():,}"
    '88,591,464'
    """
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        keras.backend.clear_session(free_memory=False)
