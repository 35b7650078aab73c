"""Train a U-Net on the Oxford-IIIT Pet segmentation masks.

Each pixel is background (0), pet (1) or the pet's border (2). Optionally the
U-Net's encoder is a ResNet or ConvNeXt of this package (`--encoder
resnet50`), initialised from ImageNet with `--encoder-weights imagenet`.
Same recipe as `train_unet_shapes.py`: AdamW with warmup + cosine, no weight
decay on biases and normalisation parameters, cross-entropy on the logits.

Needs tensorflow and tensorflow-datasets (`pip install 'keras-cvlec[tfds]'`)
and the data set downloaded once beforehand (about 800 MB), on any backend:

    python -c "import tensorflow_datasets as tfds; tfds.load('oxford_iiit_pet')"
    KERAS_BACKEND=torch python examples/train_unet_oxford_pets.py --epochs 20

Prints the test metrics and saves the model (it outputs logits) to --output.
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
    parser = argparse.ArgumentParser(description="Train a U-Net on Oxford-IIIT Pet.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-images", type=int, default=None,
                        help="images per split (default: all)")
    parser.add_argument("--filters", type=int, default=32, help="channels of the first level")
    parser.add_argument("--depth", type=int, default=4, help="number of down-samplings")
    parser.add_argument("--encoder", default=None, help="a ResNet or ConvNeXt name, e.g. resnet50")
    parser.add_argument("--encoder-weights", default=None, help="None, imagenet or a .weights.h5")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="unet_oxford_pets.keras", help="the .keras file to write")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    recipe = recipe_for("unet")

    def split(name, augment=False):
        return load_dataset(
            "oxford_iiit_pet", name, task="segmentation", image_size=args.image_size,
            batch_size=args.batch_size, num_images=args.num_images, seed=args.seed,
            augment=augment, data_dir=args.data_dir,
        )

    (validation, info), (test, _) = split("validation"), split("test")
    # The recipe's training augmentation (None: the U-Net recipe has none).
    augment = recipe_augmentation(
        recipe, "segmentation", num_classes=info.num_classes, seed=args.seed
    )
    train, _ = split("train", augment or False)

    model = keras_cvlec.build_unet(
        input_shape=(args.image_size, args.image_size, 3), num_classes=info.num_classes,
        depth=args.depth, filters=args.filters, encoder=args.encoder,
        encoder_weights=args.encoder_weights,
    )
    model.compile(
        optimizer=recipe_optimizer(
            recipe, model=model, batch_size=args.batch_size, steps_per_epoch=len(train),
            epochs=args.epochs,
        ),
        **compile_arguments(
            "segmentation", info.num_classes, label_smoothing=recipe.label_smoothing
        ),
    )
    model.fit(train, validation_data=validation, epochs=args.epochs)

    metrics = model.evaluate(test, return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    save_model_atomically(model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
