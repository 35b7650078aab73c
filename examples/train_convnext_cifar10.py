"""Train a ConvNeXt on CIFAR-10 with the ConvNeXt paper's recipe.

The recipe (Liu et al. 2022, `recipe_for("convnext_tiny")`), resolved for the
run by `prepare_training` as `keras-cvlec train` does: AdamW at the recipe's
peak learning rate, linear warmup (capped to the run) then cosine decay,
weight decay 0.05 except on biases, layer-norm parameters and layer-scale
gammas, label smoothing 0.1, stochastic depth ("drop path") growing to the
variant's rate at the last block (0.1 for ConvNeXt-T; `--drop-path-rate`
changes the recipe's), random flips and shifts, and RandAugment (magnitude
9), CutMix and MixUp at a strength that grows with the images the run sees
(the labels become one-hot once mixing is on). The model outputs logits.
This script prints how the recipe was resolved, then fits, evaluates and
saves the model.

Needs tensorflow and tensorflow-datasets (`pip install 'keras-cvlec[tfds]'`)
and CIFAR-10 downloaded once beforehand (about 160 MB), on any backend:

    python -c "import tensorflow_datasets as tfds; tfds.load('cifar10')"
    KERAS_BACKEND=jax python examples/train_convnext_cifar10.py --variant atto --epochs 50

Prints the test metrics and saves the model to --output.
"""

import argparse

from keras_cvlec.training import prepare_training, save_model_atomically


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Train a ConvNeXt on CIFAR-10.")
    parser.add_argument(
        "--variant",
        default="tiny",
        choices=("atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge"),
    )
    parser.add_argument(
        "--drop-path-rate",
        type=float,
        default=None,
        help="default: the recipe's rate for the variant (tiny 0.1)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's 300")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--num-images", type=int, default=None, help="images per split (default: all)"
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="convnext_cifar10.keras", help="the .keras file to write"
    )
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    recipe_options = {}
    if args.drop_path_rate is not None:
        recipe_options["drop_path_rate"] = args.drop_path_rate
    run = prepare_training(
        f"convnext_{args.variant}",
        "cifar10",
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        num_images=args.num_images,
        seed=args.seed,
        data_dir=args.data_dir,
        recipe_options=recipe_options,
    )
    print(run.plan.summary(run.task))
    run.model.fit(run.data["train"], validation_data=run.data["validation"], epochs=run.epochs)

    metrics = run.model.evaluate(run.data["test"], return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    save_model_atomically(run.model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
