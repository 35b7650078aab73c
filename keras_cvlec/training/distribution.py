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

Several processes (machines), every one running the same program with its own
`process_id`: JAX joins them with `keras.distribution.initialize` (CPU
collectives through gloo) and `DataParallel` spans every process's devices;
each process feeds its own part of every global batch (`distribute_data`).
TensorFlow runs a `MultiWorkerMirroredStrategy` over the processes, fed the
same way from a `tf.data` split (a PyDataset's batches it splits itself).
Process 0 is the chief.
"""

import contextlib
import dataclasses
import functools
import json
import os

import keras

from keras_cvlec.utils.validation import check_choice, check_positive_int

__all__ = [
    "DATA_PARALLEL_BACKENDS",
    "DISTRIBUTIONS",
    "Distribution",
    "check_distribution",
    "check_processes",
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
        process_id: this process's number, `0` (the chief) to
            `num_processes - 1`.
        engine: the Keras `Distribution` (JAX) or `tf.distribute.Strategy`
            (TensorFlow) that runs it; None for `"none"`.
    """

    kind: str
    num_devices: int = 1
    num_processes: int = 1
    process_id: int = 0
    engine: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_chief(self):
        """Whether this process writes the run's files (process 0)."""
        return self.process_id == 0

    def distribute_data(self, dataset):
        """What this process feeds to `fit` and `evaluate` of `dataset`
        (batches of the global batch size).

        Data-parallel: every batch cut to a multiple of `num_devices` (a
        last batch of fewer examples is left out: JAX cannot split it, and
        TensorFlow fails on a device left without examples); on JAX, and on
        TensorFlow across processes for a `tf.data.Dataset`, this process's
        part of each (TensorFlow's strategies split the other batches
        themselves).
        """
        if self.kind == "none":
            return dataset
        from keras_cvlec.data import shard_batches

        if keras.backend.backend() == "jax":
            return shard_batches(
                dataset, self.num_processes, self.process_id, multiple=self.num_devices
            )
        if self.num_processes == 1 or isinstance(dataset, keras.utils.PyDataset):
            return shard_batches(dataset, 1, 0, multiple=self.num_devices)
        return self._fed_per_replica(dataset)

    def _fed_per_replica(self, dataset):
        """TensorFlow across processes, a `tf.data.Dataset`: this process's
        part of every batch (as on JAX), one piece per local device. TF's
        auto-shard would rewrite the pipeline otherwise: it drops the split's
        `assert_cardinality` (with a warning), and it shards a pipeline that
        reads files (tensorflow-datasets' records) by file, which gives each
        process other examples than one process's batches hold."""
        import tensorflow as tf

        from keras_cvlec.data import shard_batches

        local_devices = self.num_devices // self.num_processes
        part = shard_batches(
            dataset, self.num_processes, self.process_id, multiple=self.num_devices
        )

        def pieces(*batch):
            return tf.data.Dataset.from_tensor_slices(
                tuple(
                    tf.reshape(tensor, tf.concat([[local_devices, -1], tf.shape(tensor)[1:]], 0))
                    for tensor in batch
                )
            )

        return self.engine.distribute_datasets_from_function(
            lambda context: part.flat_map(pieces).prefetch(local_devices)
        )

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
    names Keras or TensorFlow take; on JAX, those of every process."""
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


def _processes_from_environment():
    """`(job_addresses, num_processes, process_id)` from the environment
    variables of the backend's launchers, each None when not set: JAX
    `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`,
    `..._PROCESS_ID` (those of `keras.distribution.initialize`); TensorFlow
    `TF_CONFIG` (its `chief` and `worker` tasks, the chief first)."""
    if keras.backend.backend() != "tensorflow":
        values = [os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")]
        for name in ("KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
            value = os.environ.get(name)
            if value is not None and not value.strip().isdigit():
                raise ValueError(f"{name} must be an int >= 0. Received: {name}={value!r}")
            values.append(None if value is None else int(value))
        return tuple(values)
    if not os.environ.get("TF_CONFIG"):
        return None, None, None
    config = json.loads(os.environ["TF_CONFIG"])
    cluster, task = config.get("cluster", {}), config.get("task", {})
    tasks = [
        (job, index) for job in ("chief", "worker") for index in range(len(cluster.get(job, [])))
    ]
    if (task.get("type"), task.get("index")) not in tasks:
        raise ValueError(
            f"TF_CONFIG's task must be a chief or worker task of its cluster: the other "
            f"processes of a parameter-server set-up do not train with `fit`. Received: "
            f"TF_CONFIG={os.environ['TF_CONFIG']!r}"
        )
    addresses = cluster.get("chief", []) + cluster.get("worker", [])
    return ",".join(addresses), len(addresses), tasks.index((task["type"], task["index"]))


def check_processes(job_addresses=None, num_processes=None, process_id=None):
    """The processes of a run, from the arguments, else the environment.

    Args:
        job_addresses: None or `"host:port,host:port,..."`, the process
            addresses, process 0's (the chief, JAX's coordinator) first; JAX
            needs only process 0's.
        num_processes: None or an int >= 1, the processes taking part.
        process_id: None or this process's number, `0` to `num_processes - 1`.

    Each None argument is read from the environment (`KERAS_DISTRIBUTION_*`
    on JAX, `TF_CONFIG` on TensorFlow), else is one process.

    Returns:
        `(job_addresses, num_processes, process_id)`; job_addresses is a
        list of `"host:port"` strings (empty for one process).
    """
    from_environment = _processes_from_environment()
    job_addresses, num_processes, process_id = (
        value if value is not None else default
        for value, default in zip((job_addresses, num_processes, process_id), from_environment)
    )
    num_processes = check_positive_int(
        "num_processes", 1 if num_processes is None else num_processes
    )
    if num_processes == 1 and process_id is None:
        process_id = 0
    if process_id is None:
        raise ValueError(
            f"`process_id` is needed with num_processes={num_processes}: each process gets "
            f"its own, 0 (the chief) to {num_processes - 1}."
        )
    process_id = check_positive_int("process_id", process_id, minimum=0)
    if process_id >= num_processes:
        raise ValueError(
            f"`process_id` must be in [0, {num_processes - 1}] with "
            f"num_processes={num_processes}. Received: process_id={process_id}"
        )
    if num_processes == 1:
        return [], 1, 0
    if not isinstance(job_addresses, str) or not job_addresses:
        raise ValueError(
            f"`job_addresses` is needed with num_processes={num_processes}: "
            f"'host:port,...', process 0's first. Received: job_addresses={job_addresses!r}"
        )
    addresses = [address.strip() for address in job_addresses.split(",")]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"`job_addresses` must be 'host:port' addresses separated by commas. "
                f"Received: job_addresses={job_addresses!r}"
            )
    # TensorFlow's workers each listen at their address; JAX's connect to process 0.
    needed = (num_processes,) if keras.backend.backend() == "tensorflow" else (1, num_processes)
    if len(addresses) not in needed:
        raise ValueError(
            f"`job_addresses` must name {' or '.join(map(str, needed))} address(es) with "
            f"num_processes={num_processes} on {keras.backend.backend()}: every process's "
            f"(or process 0's alone, off TensorFlow), process 0's first. Received: "
            f"job_addresses={job_addresses!r}"
        )
    return addresses, num_processes, process_id


@functools.cache
def _join_jax_processes(coordinator, num_processes, process_id):
    """Connects this process to the others, once: before JAX runs anything."""
    import jax

    # CPU devices of several processes communicate through gloo (JAX's
    # default has no cross-process CPU collectives); GPUs and TPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(coordinator, num_processes, process_id)


@functools.cache
def _multi_worker_strategy(addresses, process_id):
    """A `MultiWorkerMirroredStrategy` over the processes at `addresses`
    (one per process: it must be created before TensorFlow runs anything)."""
    import tensorflow as tf

    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """Takes what Keras 3.15 passes to `reduce`, which only the
        single-process strategies take: a nested structure (the first batch,
        to build the model) and `axis=0` for scalars (the logs)."""

        def reduce(self, reduce_op, value, axis=None):
            reduce = super().reduce

            def reduce_one(value):
                rank = self.experimental_local_results(value)[0].shape.rank
                return reduce(reduce_op, value, axis=axis if rank else None)

            return tf.nest.map_structure(reduce_one, value)

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": list(addresses)}),
        task_type="worker",
        task_id=process_id,
        rpc_layer="grpc",
    )
    return MultiWorkerStrategy(cluster_resolver=resolver)


def check_distribution(distribution):
    """`distribution` checked against `DISTRIBUTIONS` (None is `"none"`)."""
    return check_choice(
        "distribution", "none" if distribution is None else distribution, DISTRIBUTIONS
    )


def resolve_distribution(distribution, *, job_addresses=None, num_processes=None, process_id=None):
    """The `Distribution` a run uses.

    Args:
        distribution: None or `"none"` (one device), `"auto"` (data-parallel
            when more than one device of the default kind is visible: GPUs or
            TPUs, else CPUs, of which there is one unless virtual devices are
            set up, or when several processes take part) or
            `"data-parallel"` (every visible device of that kind, of every
            process, on the JAX and TensorFlow backends).
        job_addresses, num_processes, process_id: the processes taking part
            (see `check_processes`; None: from the environment, else one).
            Several processes need `"data-parallel"` or `"auto"`; every
            process calls this with its own `process_id`, before the backend
            runs anything.

    Returns:
        A `Distribution`.

    Example:

    >>> run_on = resolve_distribution("auto")
    >>> with run_on.scope():  # doctest: +SKIP
    ...     model = build_unet(...); model.compile(...); model.fit(...)
    """
    kind = check_distribution(distribution)
    # Also for one device: a process that is one of several by its
    # environment would otherwise write the run folder as its own chief.
    addresses, num_processes, process_id = check_processes(job_addresses, num_processes, process_id)
    several = num_processes > 1
    if kind == "none":
        if several:
            raise ValueError(
                f"Several processes train data-parallel: pass distribution='data-parallel' "
                f"or 'auto' (or unset the launcher's environment variables). Received: "
                f"distribution={distribution!r} with num_processes={num_processes}"
            )
        return Distribution("none")
    backend = keras.backend.backend()
    if backend not in DATA_PARALLEL_BACKENDS:
        if kind == "auto" and not several:
            return Distribution("none")
        raise ValueError(
            f"distribution={distribution!r} needs the {' or '.join(DATA_PARALLEL_BACKENDS)} "
            f"backend: Keras {keras.__version__} cannot fit a model data-parallel on "
            f"{backend}. Received: distribution={distribution!r}, "
            f"num_processes={num_processes} with KERAS_BACKEND={backend}"
        )
    if several:
        if backend == "jax":
            _join_jax_processes(addresses[0], num_processes, process_id)
        else:
            strategy = _multi_worker_strategy(tuple(addresses), process_id)
            return Distribution(
                "data-parallel",
                num_devices=strategy.num_replicas_in_sync,
                num_processes=num_processes,
                process_id=process_id,
                engine=strategy,
            )
    devices = _local_devices()
    if kind == "auto" and len(devices) < 2:
        return Distribution("none")
    if backend == "jax":
        # Each process feeds its own part of every batch (`distribute_data`).
        engine = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    else:
        engine = _mirrored_strategy(tuple(devices))
    return Distribution(
        "data-parallel",
        num_devices=len(devices),
        num_processes=num_processes,
        process_id=process_id,
        engine=engine,
    )
