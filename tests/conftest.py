"""Test configuration: every test starts from the same global Keras state."""

import os

# The tests compile thousands of tiny XLA programs on the CPU (JAX: every op
# and weight initializer; TensorFlow: every jit_compile'd step), so compiles
# are made cheap: no backend optimisations (a truncated normal initializer
# compiles ~9x faster) and the elemental emitters instead of the fusion
# emitters (~40 % less an op; 14 tests of test_unet.py on JAX 91 -> 61 s).
# Set before Keras is imported; the subprocesses the tests start inherit it.
os.environ["XLA_FLAGS"] = " ".join(
    (
        os.environ.get("XLA_FLAGS", ""),
        "--xla_backend_optimization_level=0",
        "--xla_cpu_use_fusion_emitters=false",
    )
).strip()
# One OpenMP thread per xdist worker when scripts/test runs a worker per core:
# more would only spin on the other workers' cores (torch's CPU kernels;
# tests/models + tests/layers on torch, 2 workers on 2 cores: 140 -> 79 s).
# Set in the workers, as they inherit the controller's environment. XLA's own
# pool is left alone: one thread a worker doubled the same JAX run (323 -> 621 s).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault(
        "OMP_NUM_THREADS",
        str(max(1, (_cores or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))),
    )

import keras  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() == "jax":
    import jax

    # Every new weight shape compiles an initializer on JAX; the classic (not
    # partitionable) threefry compiles about 4x faster on CPU. Only the random
    # streams differ, and no test depends on a particular stream.
    jax.config.update("jax_threefry_partitionable", False)


# The slowest modules, slowest first (the three backends' `--junitxml` times
# summed, 2026-12-03). `scripts/test` gives xdist workers whole modules in
# collection order (`--no-loadscope-reorder`), so these start first and the
# short modules fill in the end of the run: no worker draws a long module
# when the other is done.
SLOW_MODULES = (
    "test_export.py",
    "models/test_unet.py",
    "training/test_precision.py",
    "training/test_distribution.py",
    "test_lecture.py",
    "models/test_resnet.py",
    "training/test_run.py",
    "training/test_resume.py",
    "models/test_convnext.py",
    "test_weights.py",
    "models/test_fcn.py",
    "test_doctests.py",
    "layers/test_unpooling.py",
    "test_examples.py",
    "layers/test_resnet_blocks.py",
    "models/test_registry.py",
    "layers/test_convolution.py",
    "utils/test_flops.py",
    "test_benchmarks.py",
)


def _slowness_rank(item):
    path = item.path.as_posix()
    return next(
        (rank for rank, module in enumerate(SLOW_MODULES) if path.endswith("tests/" + module)),
        len(SLOW_MODULES),
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backend_independent: runs no backend code (argument parsing, folder "
        "scanning, recipe tables, CLI errors); scripts/test runs it with the "
        "first backend only",
    )


def pytest_collection_modifyitems(items):
    items.sort(key=_slowness_rank)  # stable: the other modules keep their order


@pytest.fixture(autouse=True)
def reset_keras_state():
    """float32 policy, channels_last and seed 0 before (and after) every test."""

    def reset():
        keras.config.set_dtype_policy("float32")
        keras.config.set_image_data_format("channels_last")
        keras.utils.set_random_seed(0)

    reset()
    yield
    reset()
