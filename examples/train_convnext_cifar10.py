"""Train a ConvNeXt on CIFAR-10 with the ConvNeXt paper's recipe.

The recipe (Liu et al. 2022, `recipe_for("convnext_tiny")`): AdamW at the
recipe's peak learning rate (the same at any batch size unless
`learning_rate_scaling` says), linear warmup then cosine
decay, weight decay 0.05 except on biases, layer-norm parameters and
layer-scale gammas (`recipe_optimizer` excludes them), label
smoothing 0.1, stochastic depth ("drop path") growing to the variant's rate
at the last block (0.1 for ConvNeXt-T), random flips and shifts, RandAugment
(magnitude 9), CutMix and MixUp (`recipe_augmentation`; the labels become
one-hot, so the loss is `CategoricalCrossentropy`). The model outputs logits.

Needs tensorflow and tensorflow-datasets (`pip install 'keras-cvlec[tfds]'`)
and CIFAR-10 downloaded once beforehand (about 160 MB), on any backend:

    python -c "import tensorflow_datasets as tfds; tfds.load('cifar10')"
    KERAS_BACKEND=jax python examples/train_convnext_cifar10.py --variant atto --epochs 50

Prints the test metrics and saves the model to --output.
"""

import argparse

import keras

import keras_cvlec
from keras_cvlec.data import load_dataset
from keras_cvlec.training import (
    compile_arguments,
    recipe_augmentation,
    recipe_for,
    recipe_optimizer,
    save_model_atomically,
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Train a ConvNeXt on CIFAR-10.")
    parser.add_argument("--variant", default="tiny",
                        choices=("atto", "femto", "pico", "nano", "tiny", "small", "base",
                                 "large", "xlarge"))
    parser.add_argument("--drop-path-rate", type=float, default=None,
                        help="default: the recipe's rate for the variant (tiny 0.1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's 300")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-images", type=int, default=None,
                        help="images per split (default: all)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="convnext_cifar10.keras", help="the .keras file to write")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    recipe = recipe_for(f"convnext_{args.variant}")
    epochs = args.epochs or recipe.epochs
    drop_path_rate = recipe.drop_path_rate if args.drop_path_rate is None else args.drop_path_rate

    def split(name, augment=False):
        return load_dataset(
            "cifar10", name, image_size=args.image_size, batch_size=args.batch_size,
            num_images=args.num_images, seed=args.seed, data_dir=args.data_dir,
            augment=augment, one_hot=recipe.mixes_labels,
        )

    (validation, info), (test, _) = split("validation"), split("test")
    # The recipe's training augmentation (RandAugment, CutMix and MixUp: the
    # labels of every split are one-hot).
    augment = recipe_augmentation(
        recipe, "classification", num_classes=info.num_classes, seed=args.seed
    )
    train, _ = split("train", augment or False)

    model = keras_cvlec.build_convnext(
        args.variant, num_classes=info.num_classes,
        input_shape=(args.image_size, args.image_size, 3),
        drop_path_rate=drop_path_rate, classifier_activation=None,
    )
    model.compile(
        optimizer=recipe_optimizer(
            recipe, model=model, batch_size=args.batch_size, steps_per_epoch=len(train),
            epochs=epochs,
        ),
        **compile_arguments(
            "classification", info.num_classes, label_smoothing=recipe.label_smoothing,
            one_hot=recipe.mixes_labels,
        ),
    )
    model.fit(train, validation_data=validation, epochs=epochs)

    metrics = model.evaluate(test, return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    save_model_atomically(model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
