"""Quick start: build a ResNet-18, train it with model.fit, evaluate it.

The task needs no download: 32x32 noise images whose brightest quadrant is the
label (4 classes). A ResNet learns it in a few epochs on a laptop CPU.

    KERAS_BACKEND=jax python examples/quickstart.py
"""

import keras
import numpy as np

import keras_cvlec


def brightest_quadrant_data(num_images, size=32, seed=0):
    """Noise images with one brighter quadrant; the label is its index."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 1.0, (num_images, size, size, 3)).astype("float32")
    labels = rng.integers(0, 4, num_images)
    half = size // 2
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 2)
        image[row * half : (row + 1) * half, col * half : (col + 1) * half] += 0.3
    return images, labels


def main():
    keras.utils.set_random_seed(0)
    x_train, y_train = brightest_quadrant_data(512, seed=0)
    x_test, y_test = brightest_quadrant_data(256, seed=1)

    model = keras_cvlec.build_resnet(
        "resnet18", version="v1.5", num_classes=4, input_shape=(32, 32, 3)
    )
    print(f"{model.name}: {model.count_params():,} parameters, "
          f"backend {keras.backend.backend()}")
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=3, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.3f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
