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


def run_on_every_backend(script, arguments):
    """Runs `python script *arguments` once per backend, one after another."""
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, script, *arguments], env=env, check=True)
