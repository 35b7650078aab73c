"""Run by tests/training/test_distribution.py: one process of a `train` run
over several processes on this machine; prints its metrics as JSON.

Usage: KERAS_BACKEND=jax|tensorflow python multiprocess_run.py JOB_ADDRESSES
    NUM_PROCESSES PROCESS_ID TRAIN_ARGUMENTS_JSON
"""

import json
import os
import sys

if os.environ["KERAS_BACKEND"] == "jax":
    import jax

    # As in tests/conftest.py: the initial weights of the test process (and
    # faster compiles).
    jax.config.update("jax_threefry_partitionable", False)

from keras_cvlec.training import train  # noqa: E402


def main(job_addresses, num_processes, process_id, arguments):
    metrics = train(
        job_addresses=job_addresses,
        num_processes=int(num_processes),
        process_id=int(process_id),
        **json.loads(arguments),
    )
    print(json.dumps(metrics["test"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
