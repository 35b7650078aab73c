"""Run by tests/training/test_distribution.py in a fresh process, where 2
virtual CPU devices can still be set up before the backend starts: trains
one- and two-device copies of a tiny U-Net and a tiny `train` run, and
prints the results as JSON.

Usage: KERAS_BACKEND=jax|tensorflow python distributed_run.py OUTPUT_DIR
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cvlec import build_unet  # noqa: E402
from keras_cvlec.training import train  # noqa: E402
from keras_cvlec.training.distribution import resolve_distribution  # noqa: E402


def _weights_after_two_steps(distribution):
    """Initial and trained weights of a U-Net without BatchNormalization,
    after two SGD steps of global batch 8."""
    images = np.random.RandomState(0).rand(16, 8, 8, 3).astype("float32")
    masks = np.random.RandomState(1).randint(0, 2, (16, 8, 8))
    keras.utils.set_random_seed(1)
    with resolve_distribution(distribution).scope():
        model = build_unet(input_shape=(8, 8, 3), num_classes=2, depth=1, filters=4, norm=None)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        initial = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        model.fit(images, masks, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return initial, [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]


def main(output_dir):
    initial, one_device = _weights_after_two_steps("none")
    _, two_devices = _weights_after_two_steps("data-parallel")
    try:
        train("unet", "shapes", batch_size=7, output_dir=output_dir, distribution="auto")
        uneven_batch = None
    except ValueError as error:
        uneven_batch = str(error)
    train(
        "unet",
        "shapes",
        epochs=1,
        batch_size=8,
        image_size=16,
        num_images=17,  # a last batch of 1 (left out): not one image a device
        model_options={"filters": 4, "depth": 1},
        output_dir=output_dir,
        distribution="auto",
        verbose=0,
    )
    print(
        json.dumps(
            {
                "difference": max(float(abs(a - b).max()) for a, b in zip(one_device, two_devices)),
                "uneven_batch": uneven_batch,
                "change": max(float(abs(a - b).max()) for a, b in zip(initial, one_device)),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
