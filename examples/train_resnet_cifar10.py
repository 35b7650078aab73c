"""Train a ResNet on CIFAR-10 with the "ResNet strikes back" recipe.

`prepare_training` sets the run up as `keras-cvlec train` does: the recipe
(`recipe_for("resnet18")`) resolved for the run by `resolve_recipe` (AdamW at
the recipe's peak learning rate, linear warmup capped to the run then cosine
decay, no weight decay on biases and batch-norm parameters, label smoothing
0.1, random flips and shifts, and RandAugment, CutMix and MixUp at a strength
that grows with the images the run sees: off for tiny runs, with one-hot
labels and `CategoricalCrossentropy` once mixing is on). The model outputs
logits. This script adds its own callback: early stopping on the validation
accuracy, keeping the best epoch's weights.

CIFAR needs tensorflow and tensorflow-datasets (`pip install
'keras-cvlec[tfds]'`) and the data set downloaded once beforehand (about
160 MB), on any backend. `--dataset shapes` trains on the embedded shapes
data set instead (circle, square or triangle per image): no download, no
TensorFlow.

    python -c "import tensorflow_datasets as tfds; tfds.load('cifar10')"
    KERAS_BACKEND=jax python examples/train_resnet_cifar10.py --epochs 30
    python examples/train_resnet_cifar10.py --dataset shapes --epochs 3

Prints the resolved recipe and the test metrics and saves the model to --output.
"""

import argparse

import keras

from keras_cvlec.training import prepare_training, save_model_atomically


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Train a ResNet on CIFAR-10.")
    parser.add_argument(
        "--dataset",
        default="cifar10",
        help="cifar10, cifar100, imagenette, shapes or a folder of class folders",
    )
    parser.add_argument(
        "--variant",
        default="resnet18",
        choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    )
    parser.add_argument("--version", default="v1.5", choices=("v1", "v1.5", "v2"))
    parser.add_argument(
        "--filters",
        type=int,
        default=64,
        help="filters of the first stage, doubled at each stage (64: the paper's)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's 100")
    parser.add_argument(
        "--patience",
        type=int,
        default=10,
        help="stop after this many epochs without a better validation accuracy",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--num-images", type=int, default=None, help="images per split (default: all)"
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="resnet_cifar10.keras", help="the .keras file to write")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = prepare_training(
        args.variant,
        args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        num_images=args.num_images,
        seed=args.seed,
        model_options={"version": args.version, "filters": args.filters},
        # The embedded shapes data set has no tensorflow-datasets folder.
        data_dir=None if args.dataset == "shapes" else args.data_dir,
    )
    print(run.plan.summary(run.task))
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=args.patience, restore_best_weights=True
    )
    run.model.fit(
        run.data["train"],
        validation_data=run.data["validation"],
        epochs=run.epochs,
        callbacks=[early_stopping],
    )

    metrics = run.model.evaluate(run.data["test"], return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    save_model_atomically(run.model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
