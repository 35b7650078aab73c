"""Train a U-Net on the Oxford-IIIT Pet segmentation masks.

Each pixel is background (0), pet (1) or the pet's border (2). Optionally the
U-Net's backbone is a ResNet or ConvNeXt of this package (`--backbone
resnet50`), initialised from ImageNet with `--backbone-weights imagenet`.
`prepare_training` sets the run up as `keras-cvlec train` does (the U-Net
recipe resolved for the run: AdamW with warmup + cosine, no weight decay on
biases and normalisation parameters, cross-entropy on the logits); this
script fits the model, then reports the IoU of each class
(`class_report`) besides Keras's metrics.

Needs tensorflow and tensorflow-datasets (`pip install 'keras-cvlec[tfds]'`)
and the data set downloaded once beforehand (about 800 MB), on any backend:

    python -c "import tensorflow_datasets as tfds; tfds.load('oxford_iiit_pet')"
    KERAS_BACKEND=torch python examples/train_unet_oxford_pets.py --epochs 20

Prints the test metrics and saves the model (it outputs logits) to --output.
"""

import argparse

from keras_cvlec.training import prepare_training, save_model_atomically
from keras_cvlec.training.report import class_report


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Train a U-Net on Oxford-IIIT Pet.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument(
        "--num-images", type=int, default=None, help="images per split (default: all)"
    )
    parser.add_argument("--filters", type=int, default=32, help="channels of the first level")
    parser.add_argument("--depth", type=int, default=4, help="number of down-samplings")
    parser.add_argument("--backbone", default=None, help="a ResNet or ConvNeXt name, e.g. resnet50")
    parser.add_argument("--backbone-weights", default=None, help="None, imagenet or a .weights.h5")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default="unet_oxford_pets.keras", help="the .keras file to write"
    )
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, got {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = prepare_training(
        "unet",
        "oxford_iiit_pet",
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        num_images=args.num_images,
        seed=args.seed,
        data_dir=args.data_dir,
        model_options={
            "filters": args.filters,
            "depth": args.depth,
            "backbone": args.backbone,
            "backbone_weights": args.backbone_weights,
        },
    )
    print(run.plan.summary(run.task))
    run.model.fit(run.data["train"], validation_data=run.data["validation"], epochs=run.epochs)

    metrics = run.model.evaluate(run.data["test"], return_dict=True, verbose=0)
    metrics = {name: float(value) for name, value in metrics.items()}
    print("test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    report = class_report(
        run.model,
        run.data["test"],
        num_classes=run.info.num_classes,
        class_names=run.info.class_names,
        task=run.task,
    )
    for name, scores in report["per_class"].items():
        iou = "n/a" if scores["iou"] is None else f"{scores['iou']:.4f}"
        print(f"  {name}: IoU {iou}")
    save_model_atomically(run.model, args.output)
    print(f"model saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
