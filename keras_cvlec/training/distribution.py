"""Data-parallel training: one model replicated on every local device, each
device training on its part of the global batch.

- JAX: `keras.distribution.DataParallel` over the local devices. The train
  step is one program over the global, sharded batch, so BatchNormalization
  statistics are those of the global batch (synchronized).
- TensorFlow: `tf.distribute.MirroredStrategy`; the model is built and
  compiled in its scope and `fit` distributes the data. Keras keeps
  BatchNormalization statistics per replica there (its `synchronized=True`
  is TensorFlow-only and would be saved into the `.keras` file, which then
  no longer loads on JAX or PyTorch).
- PyTorch: Keras 3 has no data-parallel `fit` for torch (its `keras.distribution`
  has no torch implementation; DDP needs a custom loop), so it is refused.

The global batch is `batch_size`: each of N devices gets `batch_size / N`
images, and the weights after a step are those of one device on the global
batch (for a model without BatchNormalization).
"""

import contextlib
import dataclasses
import functools

import keras

from keras_cvlec.utils.validation import check_choice

__all__ = [
    "DATA_PARALLEL_BACKENDS",
    "DISTRIBUTIONS",
    "Distribution",
    "check_distribution",
    "resolve_distribution",
]

DISTRIBUTIONS = ("none", "auto", "data-parallel")
DATA_PARALLEL_BACKENDS = ("jax", "tensorflow")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """How a run is spread over devices: what `resolve_distribution` returns.

    Attributes:
        kind: `"none"` or `"data-parallel"`.
        num_devices: the devices the global batch is split over.
        num_processes: the processes taking part (1: one machine, one process).
        engine: the Keras `Distribution` (JAX) or `tf.distribute.Strategy`
            (TensorFlow) that runs it; None for `"none"`.
    """

    kind: str
    num_devices: int = 1
    num_processes: int = 1
    engine: object = dataclasses.field(default=None, repr=False, compare=False)

    def scope(self):
        """A context manager in which models are built, compiled and fit on
        the distribution; it restores the previous one on exit."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()

    def to_json(self):
        """What `run.json` records."""
        return {
            "kind": self.kind,
            "num_devices": self.num_devices,
            "num_processes": self.num_processes,
        }


def _local_devices():
    """The devices of the default kind (GPU or TPU if any, else CPU) as
    names Keras or TensorFlow take."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [device.name for device in devices]
    if backend == "jax":
        return keras.distribution.list_devices()
    return []


@functools.cache
def _mirrored_strategy(devices):
    """One `MirroredStrategy` a set of devices per process: a second one
    reuses the collective-op keys of the first, and the two runs' gradient
    all-reduces then fail with mismatched shapes."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def check_distribution(distribution):
    """`distribution` checked against `DISTRIBUTIONS` (None is `"none"`)."""
    return check_choice(
        "distribution", "none" if distribution is None else distribution, DISTRIBUTIONS
    )


def resolve_distribution(distribution):
    """The `Distribution` a run uses.

    Args:
        distribution: None or `"none"` (one device), `"auto"` (data-parallel
            when more than one device of the default kind is visible: GPUs or
            TPUs, else CPUs, of which there is one unless virtual devices are
            set up) or `"data-parallel"` (every visible device of that kind,
            on the JAX and TensorFlow backends).

    Returns:
        A `Distribution`.

    Example:

    >>> run_on = resolve_distribution("auto")
    >>> with run_on.scope():  # doctest: +SKIP
    ...     model = build_unet(...); model.compile(...); model.fit(...)
    """
    kind = check_distribution(distribution)
    if kind == "none":
        return Distribution("none")
    backend = keras.backend.backend()
    if backend not in DATA_PARALLEL_BACKENDS:
        if kind == "auto":
            return Distribution("none")
        raise ValueError(
            f"distribution='data-parallel' needs the {' or '.join(DATA_PARALLEL_BACKENDS)} "
            f"backend: Keras {keras.__version__} cannot fit a model data-parallel on "
            f"{backend}. Received: distribution={distribution!r} with KERAS_BACKEND={backend}"
        )
    devices = _local_devices()
    if kind == "auto" and len(devices) < 2:
        return Distribution("none")
    if backend == "jax":
        engine = keras.distribution.DataParallel(devices=devices)
    else:
        engine = _mirrored_strategy(tuple(devices))
    return Distribution("data-parallel", num_devices=len(devices), engine=engine)
