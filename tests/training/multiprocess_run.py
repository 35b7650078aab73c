"""Run by tests/training/test_distribution.py: one process of a `train` run
over several processes on this machine; prints its metrics as JSON.

Usage: KERAS_BACKEND=jax|tensorflow python multiprocess_run.py JOB_ADDRESSES
    NUM_PROCESSES PROCESS_ID TRAIN_ARGUMENTS_JSON [STOP_FILE]

With STOP_FILE, the process writes STOP_FILE.PROCESS_ID once its first epoch
has ended (its log row, backup and checkpoints written) and then waits to be
killed: a run killed after that epoch, at a known point.
"""

import json
import os
import sys
import time

if os.environ["KERAS_BACKEND"] == "jax":
    import jax

    # As in tests/conftest.py: the initial weights of the test process (and
    # faster compiles).
    jax.config.update("jax_threefry_partitionable", False)

import keras  # noqa: E402

from keras_cvlec.training import run as training_run  # noqa: E402
from keras_cvlec.training import train  # noqa: E402


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    """Writes `path` at the end of the first epoch, after the run's own
    callbacks, and waits to be killed."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        with open(self.path, "w"):
            pass
        time.sleep(3600)


def main(job_addresses, num_processes, process_id, arguments, stop_file=None):
    if stop_file is not None:
        callbacks = training_run._callbacks
        stop = _StopAfterFirstEpoch(f"{stop_file}.{process_id}")
        training_run._callbacks = lambda run: [*callbacks(run), stop]
    metrics = train(
        job_addresses=job_addresses,
        num_processes=int(num_processes),
        process_id=int(process_id),
        **json.loads(arguments),
    )
    print(json.dumps(metrics["test"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
