"""Run by tests/training/test_distribution.py: one process of a tiny
data-parallel `train` run over several processes on this machine.

Usage: KERAS_BACKEND=jax|tensorflow python multiprocess_run.py OUTPUT_DIR
    JOB_ADDRESSES NUM_PROCESSES PROCESS_ID [--resume]
"""

import json
import sys

from keras_cvlec.training import train

# A model without BatchNormalization: its weights after a step on the global
# batch do not depend on how the batch is split.
TINY = dict(
    epochs=1,
    batch_size=8,
    image_size=16,
    num_images=16,
    recipe_options={"augment": False},
    model_options={"filters": 4, "depth": 1, "norm": None},
    verbose=2,
)


def main(output_dir, job_addresses, num_processes, process_id, *options):
    metrics = train(
        "unet",
        "shapes",
        output_dir=output_dir,
        distribution="data-parallel",
        job_addresses=job_addresses,
        num_processes=int(num_processes),
        process_id=int(process_id),
        resume="--resume" in options,
        **TINY,
    )
    print(json.dumps({"process_id": int(process_id), "test_loss": metrics["test"]["loss"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
