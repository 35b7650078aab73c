"""What the benchmark scripts share: a median timer and a re-run of the
script under every backend (Keras picks its backend once per process)."""

import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def median_seconds(fn, warmup, repeats):
    """The median wall time of `repeats` calls of `fn` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def alternate(steps, count, rounds, warmup):
    """`{label: [seconds of count calls] x rounds}` of the callables in the
    dict `steps`, after `warmup` untimed calls each, taking turns within each
    round (so that a change in the machine's load hits them all)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            seconds[label].append(median_seconds(lambda s=step: [s() for _ in range(count)], 0, 1))
    return seconds


def run_on_every_backend(script, arguments):
    """Runs `python script *arguments` once per backend, one after another."""
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, script, *arguments], env=env, check=True)


def installed_backends():
    """The backends of `BACKENDS` whose package imports here."""
    import importlib.util

    modules = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return tuple(b for b in BACKENDS if importlib.util.find_spec(modules[b]) is not None)


def run_worker(script, backend, arguments):
    """Runs `python script *arguments` with `KERAS_BACKEND=backend` and returns
    the JSON object it writes to the file named after its `--worker-json`."""
    import json
    import tempfile

    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "result.json")
        completed = subprocess.run(
            [sys.executable, script, *arguments, "--worker-json", path], env=env
        )
        if completed.returncode != 0 or not os.path.exists(path):
            return {"backend": backend, "error": f"exit {completed.returncode}"}
        with open(path) as file:
            return json.load(file)


def matmul_step(size, dtype="float32"):
    """`(call, flops)`: a call of a `size` x `size` matmul in `dtype` on the
    current backend's default device, and its FLOPs (2 * size**3)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (keras.ops.cast(rng.standard_normal((size, size)), dtype) for _ in range(2))

    def call():
        # Reading one element back waits for the asynchronous backends.
        keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, b)[0, 0], "float32"))

    return call, 2.0 * size**3


def matmul_flops_per_second(size, dtype="float32", warmup=2, repeats=5):
    """FLOP/s of a `size` x `size` matmul in `dtype` (see `matmul_step`)."""
    call, flops = matmul_step(size, dtype)
    return flops / median_seconds(call, warmup, repeats)


def train_images_per_second(model, x, y, steps, warmup=5, rounds=1):
    """Images a second of `model.train_on_batch(x, y)`: the median over
    `rounds` of `steps` timed steps, after `warmup` untimed ones (the first
    traces and compiles; torch's first steps are slow on CPU)."""
    for _ in range(warmup):
        model.train_on_batch(x, y)
    return (
        len(x)
        * steps
        / median_seconds(lambda: [model.train_on_batch(x, y) for _ in range(steps)], 0, rounds)
    )


# The benchmarked models: name -> (task, full-size build arguments, --tiny
# build arguments). `family` is the keras_cvlec builder.
MODELS = {
    "resnet50": ("resnet", {"variant": "resnet50"}, {"variant": "resnet18"}),
    "convnext_tiny": ("convnext", {"variant": "tiny"}, {"variant": "atto"}),
    "unet": ("unet", {}, {"filters": 8, "depth": 2}),
}


def build_model(name, image_size, tiny=False):
    """The benchmark model `name` of `MODELS` for `image_size`² RGB images,
    1000 classes (10 with `tiny`): returns `(model, make_batch)` where
    `make_batch(batch_size)` gives random training data `(x, y)`."""
    import numpy as np

    import keras_cvlec

    family, full, small = MODELS[name]
    arguments = dict(small if tiny else full, input_shape=(image_size, image_size, 3))
    builder = getattr(keras_cvlec, f"build_{family}")
    if family == "unet":
        model = builder(num_classes=2, **arguments)
        label_shape, classes = (image_size, image_size), 2
    else:
        classes = 10 if tiny else 1000
        model = builder(num_classes=classes, **arguments)
        label_shape = ()
    rng = np.random.default_rng(0)

    def make_batch(batch_size):
        x = rng.uniform(0, 1, (batch_size, image_size, image_size, 3)).astype("float32")
        return x, rng.integers(0, classes, (batch_size, *label_shape))

    return model, make_batch


def device_name():
    """The accelerator Keras runs on (its name), or the CPU model."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return device.device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU {_cpu_model()} ({os.cpu_count()} cores)"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def peak_memory():
    """`(bytes, kind)`: the peak device memory of this process where the
    backend tells it ("device"), else the peak resident set size ("RSS")."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"], "device"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated(), "device"
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"], "device"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "RSS"
