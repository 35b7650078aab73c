"""Time an `Augmentation` on NumPy batches: eagerly on the Keras backend
against the TensorFlow graph that `Augmentation.__call__` uses.

Usage (one backend per process, as Keras needs):

    KERAS_BACKEND=torch python benchmarks/augmentation.py
    python benchmarks/augmentation.py --all-backends   # spawns one process each

Prints the median seconds per batch of 32 64x64 images for the ResNet
recipe's classification augmentation (flip, shift, RandAugment, CutMix,
MixUp) and the default segmentation augmentation, and the eager/graph ratio.
No result is asserted; numbers depend on the machine.
"""

import argparse

from timing import median_seconds, run_on_every_backend


def run_current_backend(warmup, repeats):
    import dataclasses

    import keras
    import numpy as np

    from keras_cvlec.training.recipes import RECIPES, recipe_augmentation

    rng = np.random.default_rng(0)
    images = rng.random((32, 64, 64, 3), dtype="float32")
    cases = {
        "classification (resnet recipe)": (
            recipe_augmentation(RECIPES["resnet"], "classification", num_classes=3, seed=0),
            rng.integers(0, 3, 32).astype("int32"),
        ),
        "segmentation (default)": (
            recipe_augmentation(
                dataclasses.replace(RECIPES["unet"], augment=True),
                "segmentation",
                num_classes=4,
                seed=0,
            ),
            rng.integers(0, 4, (32, 64, 64)).astype("int32"),
        ),
    }
    for name, (augment, targets) in cases.items():
        graph = median_seconds(lambda a=augment, t=targets: a(images, t), warmup, repeats)
        eager = median_seconds(lambda a=augment, t=targets: a._apply(images, t), warmup, repeats)
        print(
            f"{keras.backend.backend():10s} {name:32s} eager {eager:7.3f} s  "
            f"graph {graph:7.3f} s  eager/graph {eager / graph:5.1f}x"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-backends", action="store_true")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.all_backends:
        run_current_backend(args.warmup, args.repeats)
        return
    run_on_every_backend(__file__, ["--warmup", str(args.warmup), "--repeats", str(args.repeats)])


if __name__ == "__main__":
    main()
