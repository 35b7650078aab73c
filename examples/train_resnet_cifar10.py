"""Train a ResNet on CIFAR-10 with the "ResNet strikes back" recipe.

The recipe (`recipe_for("resnet18")`): AdamW at a learning rate scaled
linearly to the batch size, linear warmup then cosine decay, no weight decay
on biases and batch-norm parameters (`make_optimizer(model=...)` excludes
them), label smoothing 0.1, random flips and shifts. The model outputs
logits.

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
import os

import keras

import keras_cvlec
from keras_cvlec.data import load_dataset
from keras_cvlec.losses import SparseCategoricalCrossentropy
from keras_cvlec.training import make_optimizer, recipe_for, scaled_learning_rate


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Train a ResNet on CIFAR-10.")
    parser.add_argument("--dataset", default="cifar10",
                        help="cifar10, cifar100, imagenette, shapes or a folder of class folders")
    parser.add_argument("--variant", default="resnet18",
                        choices=("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))
    parser.add_argument("--version", default="v1.5", choices=("v1", "v1.5", "v2"))
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


def save_model(model, path):
    # Saved under a temporary name, then renamed: a killed run leaves no
    # half-written model behind.
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".partial-{name}")
    model.save(temporary)
    os.replace(temporary, path)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    recipe = recipe_for(args.variant)
    epochs = args.epochs or recipe.epochs

    def split(name):
        return load_dataset(
            args.dataset, name, task="classification", image_size=args.image_size,
            batch_size=args.batch_size, num_images=args.num_images, seed=args.seed,
            augment=recipe.augment and name == "train",
            # The embedded shapes data set has no tensorflow-datasets folder.
            data_dir=None if args.dataset == "shapes" else args.data_dir,
        )

    (train, info), (validation, _), (test, _) = map(split, ("train", "validation", "test"))

    model = keras_cvlec.build_resnet(
        args.variant, version=args.version, num_classes=info.num_classes,
        input_shape=(args.image_size, args.image_size, 3),
        drop_path_rate=recipe.drop_path_rate, classifier_activation=None,
    )
    total_steps = len(train) * epochs
    optimizer = make_optimizer(
        learning_rate=scaled_learning_rate(recipe, args.batch_size),
        weight_decay=recipe.weight_decay,
        total_steps=total_steps,
        # A run shorter than the recipe's warmup warms up over half of it.
        warmup_steps=min(round(recipe.warmup_epochs * len(train)), total_steps // 2),
        model=model,
    )
    # Built before `fit`: built inside the first traced training step,
    # TensorFlow would trace that step twice.
    optimizer.build(model.trainable_variables)
    model.compile(
        optimizer=optimizer,
        loss=SparseCategoricalCrossentropy(
            label_smoothing=recipe.label_smoothing, from_logits=True
        ),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(train, validation_data=validation, epochs=epochs)

    metrics = model.evaluate(test, return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    save_model(model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
