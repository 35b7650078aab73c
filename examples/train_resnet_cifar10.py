"""Train a ResNet on CIFAR-10 with the "ResNet strikes back" recipe.

The recipe (`recipe_for("resnet18")`): AdamW at the recipe's peak learning
rate (the same at any batch size unless `learning_rate_scaling` says), linear warmup then cosine decay, no weight decay
on biases and batch-norm parameters (`recipe_optimizer` excludes
them), label smoothing 0.1, random flips and shifts, RandAugment (magnitude
6), CutMix and MixUp (`recipe_augmentation`; the labels become one-hot, so the
loss is `CategoricalCrossentropy`). The model outputs logits.

CIFAR needs tensorflow and tensorflow-datasets (`pip install
'keras-cvlec[tfds]'`) and the data set downloaded once beforehand (about
160 MB), on any backend. `--dataset shapes` trains on the embedded shapes
data set instead (circle, square or triangle per image): no download, no
TensorFlow.

    python -c "import tensorflow_datasets as tfds; tfds.load('cifar10')"
    KERAS_BACKEND=jax python examples/train_resnet_cifar10.py --epochs 30
    python examples/train_resnet_cifar10.py --dataset shapes --epochs 3

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
    parser = argparse.ArgumentParser(description="Train a ResNet on CIFAR-10.")
    parser.add_argument("--dataset", default="cifar10",
                        help="cifar10, cifar100, imagenette, shapes or a folder of class folders")
    parser.add_argument("--variant", default="resnet18",
                        choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))
    parser.add_argument("--version", default="v1.5", choices=("v1", "v1.5", "v2"))
    parser.add_argument("--filters", type=int, default=64,
                        help="filters of the first stage, doubled at each stage (64: the paper's)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's 100")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-images", type=int, default=None,
                        help="images per split (default: all)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="resnet_cifar10.keras", help="the .keras file to write")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    recipe = recipe_for(args.variant)
    epochs = args.epochs or recipe.epochs

    def split(name, augment=False):
        return load_dataset(
            args.dataset, name, task="classification", image_size=args.image_size,
            batch_size=args.batch_size, num_images=args.num_images, seed=args.seed,
            augment=augment, one_hot=recipe.mixes_labels,
            # The embedded shapes data set has no tensorflow-datasets folder.
            data_dir=None if args.dataset == "shapes" else args.data_dir,
        )

    (validation, info), (test, _) = split("validation"), split("test")
    # The recipe's training augmentation (RandAugment, CutMix and MixUp: the
    # labels of every split are one-hot).
    augment = recipe_augmentation(
        recipe, "classification", num_classes=info.num_classes, seed=args.seed
    )
    train, _ = split("train", augment or False)

    model = keras_cvlec.build_resnet(
        args.variant, version=args.version, num_classes=info.num_classes,
        input_shape=(args.image_size, args.image_size, 3),
        drop_path_rate=recipe.drop_path_rate, classifier_activation=None, filters=args.filters,
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
