"""`train`, `evaluate` and `predict` on tiny runs, and the bad-input errors
that must come before any training."""

import json
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cvlec import cli
from keras_cvlec.training import evaluate, predict, train
from keras_cvlec.training.callbacks import TrainingDivergedError, read_log
from keras_cvlec.training.files import read_json
from keras_cvlec.training.run import prepare_training, run_training

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNET = {"filters": 4, "depth": 2}


def _tiny(model_name, output_dir, **kwargs):
    arguments = dict(
        epochs=2, batch_size=8, image_size=16, num_images=16, model_options=UNET, verbose=0
    )
    arguments.update(kwargs)
    return train(model_name, "shapes", output_dir=output_dir, **arguments)


def _check_png(path, size=None, mode=None):
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert size is None or image.size == size
        assert mode is None or image.mode == mode
        return np.asarray(image)


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("runs") / "unet")
    return output_dir, _tiny("unet", output_dir)


def test_a_run_uses_the_recipe_resolved_for_it(tmp_path):
    """No learning_rate given: the peak of the schedule a run trains with is
    the recipe's rate scaled by its rule (here the fourth root of the batch
    ratio, so that a run using the unscaled rate fails), the
    warm-up is capped to the run, and BatchNorm follows the steps; with
    weight EMA the run validates and saves the averaged weights."""
    run = prepare_training(
        "unet",
        "shapes",
        epochs=2,
        batch_size=8,
        image_size=16,
        num_images=24,
        model_options=UNET,
        output_dir=str(tmp_path / "run"),
        recipe_options={"ema_momentum": 0.5, "learning_rate_scaling": "fourth_root"},
    )
    run_training(run, verbose=0)
    optimizer = run.model.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == 0.5
    schedule = optimizer._learning_rate
    assert schedule.warmup_target == pytest.approx(4e-3 * (8 / 32) ** 0.25)
    assert schedule.warmup_steps == round(6 * 1 / 20)  # 1 of the recipe's 20 epochs
    assert schedule.decay_steps == 6 - schedule.warmup_steps
    norms = [
        layer
        for layer in run.model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and {layer.momentum for layer in norms} == {0.9}
    stored = read_json(str(tmp_path / "run" / "run.json"))
    assert stored["resolved_recipe"]["learning_rate"] == pytest.approx(4e-3 / 2**0.5)
    assert stored["resolved_recipe"]["steps_per_epoch"] == 3
    assert stored["args"]["learning_rate"] is None
    assert stored["resolved_recipe"]["ema_momentum"] == 0.5
    # fit ends with the averaged weights in the model: last.keras holds them
    last = keras.saving.load_model(str(tmp_path / "run" / "last.keras"), compile=False)
    averages = optimizer._model_variables_moving_average
    for saved, trained in zip(last.weights, run.model.weights):
        if trained.trainable:
            average = averages[optimizer._get_variable_index(trained)]
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(saved.value),
                keras.ops.convert_to_numpy(average.value),
                atol=1e-6,
            )


def test_train_writes_the_run_folder(unet_run):
    output_dir, metrics = unet_run
    path = lambda name: os.path.join(output_dir, name)  # noqa: E731
    for name in ("best.keras", "last.keras"):
        model = keras.saving.load_model(path(name))
        assert model.predict(np.zeros((1, 16, 16, 3)), verbose=0).shape == (1, 16, 16, 4)
    rows = read_log(path("log.csv"))
    assert [row["epoch"] for row in rows] == [0, 1]
    assert {"loss", "accuracy", "mean_iou", "val_loss", "val_mean_iou"} <= set(rows[0])
    assert read_json(path("metrics.json")) == metrics
    assert set(metrics) == {"validation", "test", "model", "per_class"}
    for split in ("validation", "test"):
        assert set(metrics[split]) == {"loss", "accuracy", "mean_iou"}
        assert 0.0 <= metrics[split]["mean_iou"] <= metrics[split]["accuracy"] <= 1.0
        # The per-class report (NumPy) agrees with Keras's metrics.
        report = metrics["per_class"][split]
        assert report["mean_iou"] == pytest.approx(metrics[split]["mean_iou"], abs=1e-5)
        assert report["accuracy"] == pytest.approx(metrics[split]["accuracy"], abs=1e-5)
        matrix = np.array(report["confusion_matrix"])
        assert matrix.shape == (4, 4) and matrix.sum() == 16 * 16 * 16  # 16 images of 16x16
        assert list(report["per_class"]) == ["background", "circle", "square", "triangle"]
    best_epoch = int(np.argmax([row["val_mean_iou"] for row in rows]))
    assert metrics["validation"]["mean_iou"] == pytest.approx(
        rows[best_epoch]["val_mean_iou"], abs=1e-6
    )
    run = read_json(path("run.json"))
    assert run["args"]["model_name"] == "unet" and run["args"]["model_options"] == UNET
    assert run["class_names"] == ["background", "circle", "square", "triangle"]
    assert run["image_size"] == [16, 16]
    assert run["from_logits"] is True and run["data_format"] == "channels_last"
    for name in ("curves.png", "predictions.png", "per_class.png"):
        _check_png(path(name))
    assert not os.path.exists(path("backup"))  # removed once the run finished

    # evaluate the saved model: the same numbers as metrics.json
    results = evaluate(
        path("best.keras"), "shapes", batch_size=8, num_images=16, per_class=True, verbose=0
    )
    for name, value in metrics["test"].items():
        assert results[name] == pytest.approx(value, rel=1e-5, abs=1e-6)
    assert results["per_class"] == metrics["per_class"]["test"]


def test_predict_writes_masks_and_overlays(unet_run, tmp_path, capsys):
    output_dir, _ = unet_run
    rng = np.random.default_rng(0)
    images = []
    for index, (width, height) in enumerate([(24, 20), (16, 16)]):
        images.append(str(tmp_path / f"image{index}.png"))
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype="uint8")).save(images[-1])
    out = tmp_path / "predictions"
    code = cli.main(
        ["predict", os.path.join(output_dir, "best.keras"), *images, "--output", str(out)]
    )
    assert code == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    # evaluate prints the metrics, then a row per class
    assert (
        cli.main(
            [
                "evaluate",
                os.path.join(output_dir, "best.keras"),
                "--dataset",
                "shapes",
                "--num-images",
                "16",
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accuracy ") and "loss" in lines[0] and "mean_iou" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [
        "class",
        "background",
        "circle",
        "square",
        "triangle",
    ]
    support = sum(int(line.split()[-1]) for line in lines[2:])
    assert support == 16 * 16 * 16
    for index, size in enumerate([(24, 20), (16, 16)]):
        mask = _check_png(out / f"image{index}_mask.png", size=size, mode="L")
        assert mask.max() <= 3
        _check_png(out / f"image{index}_overlay.png", size=size, mode="RGB")
    # Two inputs of one name in two folders: two outputs, each of its input.
    for folder, size in (("a", (8, 8)), ("b", (12, 10))):
        os.makedirs(tmp_path / folder)
        Image.fromarray(np.zeros(size[::-1] + (3,), "uint8")).save(tmp_path / folder / "x.png")
    results = predict(
        os.path.join(output_dir, "best.keras"),
        [str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")],
        str(out),
    )
    assert [os.path.basename(r["mask"]) for r in results] == ["x_mask.png", "x-2_mask.png"]
    _check_png(out / "x_mask.png", size=(8, 8))
    _check_png(out / "x-2_mask.png", size=(12, 10))


def test_predict_reads_images_as_training_does(tmp_path):
    """A 16-bit grayscale PNG (its high byte, not white) and a large image
    shrunk bilinearly without antialiasing: the pixels the training
    pipeline gives the model."""
    from keras_cvlec.data import load_folder
    from keras_cvlec.training.predict import _read_image

    rng = np.random.default_rng(0)
    for name in ("deep", "large"):
        (tmp_path / name).mkdir()
    Image.fromarray(rng.integers(0, 2**16, (20, 24), dtype="uint16")).save(
        tmp_path / "deep" / "a.png"
    )
    Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype="uint8")).save(
        tmp_path / "large" / "b.png"
    )
    dataset, _ = load_folder(tmp_path, "train", image_size=(16, 12), shuffle=False)
    trained_on = np.concatenate([np.asarray(images) for images, _ in dataset])
    for index, path in enumerate(("deep/a.png", "large/b.png")):
        array, size = _read_image(str(tmp_path / path), (16, 12), 3)
        assert size == ((24, 20), (70, 90))[index]
        np.testing.assert_allclose(array, trained_on[index], atol=1e-6)
    assert trained_on[0].max() < 1  # not clipped to white


def _compile_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["compile_config"]


def test_classification_run_mixes_labels_and_top_k(tmp_path):
    """The ResNet recipe: RandAugment, CutMix and MixUp on one-hot targets
    (validation and test one-hot too), here under mixed bfloat16."""
    output_dir = str(tmp_path / "resnet")
    # The augmentation runs as the same TensorFlow graph on every backend, but
    # off TF tracing RandAugment takes ~50 s: mixing only there.
    # A run of 8 images would scale the augmentation off: full strength here.
    recipe_options = {"scale_augmentation": False}
    if keras.backend.backend() != "tensorflow":
        recipe_options["randaugment_magnitude"] = 0
    arguments = dict(
        epochs=1,
        batch_size=8,
        image_size=32,
        num_images=8,
        model_options={"filters": 8},
        mixed_precision="mixed_bfloat16",
        learning_rate=1e-3,
        recipe_options=recipe_options,
        output_dir=output_dir,
    )
    run = prepare_training("resnet18", "shapes", **arguments)
    _, soft = run.data["train"][0]
    assert soft.shape == (8, 3) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert (soft.max(1) < 1.0).any()  # blended
    _, test_labels = run.data["test"][0]
    assert set(np.unique(test_labels)) == {0.0, 1.0} and (test_labels.sum(1) == 1).all()
    metrics = run_training(run, verbose=0)
    assert run.model.optimizer._learning_rate.warmup_target == 1e-3  # not the recipe's
    stored = read_json(os.path.join(output_dir, "run.json"))["args"]
    assert stored["learning_rate"] == 1e-3
    assert stored["recipe"]["randaugment_magnitude"] == recipe_options.get(
        "randaugment_magnitude", 6
    )
    assert set(metrics["test"]) == {"loss", "accuracy"}
    assert [row["epoch"] for row in read_log(os.path.join(output_dir, "log.csv"))] == [0]
    best = os.path.join(output_dir, "best.keras")
    loss = _compile_config(best)["loss"]
    assert loss["class_name"] == "CategoricalCrossentropy"
    assert loss["config"]["label_smoothing"] == 0.1
    model = keras.saving.load_model(best, compile=False)
    assert model.get_layer("stem_conv").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("stem_conv").kernel.shape == (7, 7, 3, 8)
    # evaluate takes the integer labels and gives the numbers of metrics.json
    results = evaluate(best, "shapes", batch_size=8, image_size=32, num_images=8, verbose=0)
    assert results == pytest.approx(metrics["test"], rel=1e-4, abs=1e-5)
    image = str(tmp_path / "image.png")
    Image.fromarray(np.full((40, 30, 3), 128, "uint8")).save(image)
    (result,) = predict(os.path.join(output_dir, "best.keras"), [image], top_k=5)
    names = [name for name, _ in result["top_k"]]
    probabilities = [p for _, p in result["top_k"]]
    # 3 classes only: circle, square, triangle, most probable first
    assert sorted(names) == ["circle", "square", "triangle"]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_bad_input_fails_before_training(unet_run, tmp_path):
    existing, _ = unet_run
    fresh = str(tmp_path / "fresh")
    masks_folder = tmp_path / "masks"
    for folder in ("images", "masks"):
        (masks_folder / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), "uint8")).save(masks_folder / folder / "a.png")
    cases = [
        (dict(model_name="resnet7"), ValueError, "model_name.*'resnet7'.*'resnet18'"),
        (dict(dataset="imagenet21k"), ValueError, "imagenet21k.*shapes"),
        (dict(dataset="cifar10"), ValueError, "cifar10.*no 'segmentation'.*classification"),
        (dict(model_name="autoencoder"), ValueError, "does not support reconstruction.*unet"),
        (
            dict(model_name="resnet18", image_size=16, model_options=None),
            ValueError,
            "Cannot build 'resnet18'.*16, 16, 3.*at least 32",
        ),
        (dict(epochs=0), ValueError, "epochs.*>= 1.*0"),
        (dict(learning_rate=0.0), ValueError, "learning_rate.*> 0.0.*learning_rate=0.0"),
        (dict(mixed_precision="float8"), ValueError, "mixed_precision.*float8"),
        (dict(recipe_options={"mixup": 0}), ValueError, "Unknown recipe option.*'mixup'"),
        (dict(recipe_options=[("augment", True)]), TypeError, "recipe_options.*dict"),
        (dict(model_options={"num_classes": 3}), ValueError, "cannot set num_classes"),
        (dict(resume=True), ValueError, "holds no run"),
        (dict(seed=-1), ValueError, r"`seed` must be None or an int in \[0, 2147483647\]"),
        (dict(seed=2**31), ValueError, r"int in \[0, 2147483647\]. Received: seed=2147483648"),
        (dict(verbose=7), ValueError, r"Unknown `verbose`: 7\. Allowed values: 'auto', 0, 1, 2"),
        (
            dict(output_dir=""),
            ValueError,
            "`output_dir` must name a folder. Received: output_dir=''",
        ),
        (
            dict(model_name="resnet18", dataset=masks_folder),
            ValueError,
            "has no 'classification' task. It supports: 'segmentation'",
        ),
    ]
    for overrides, error, message in cases:
        arguments = dict(
            model_name="unet",
            dataset="shapes",
            output_dir=fresh,
            num_images=4,
            epochs=1,
            model_options=UNET,
        )
        arguments.update(overrides)
        with pytest.raises(error, match=message):
            train(arguments.pop("model_name"), arguments.pop("dataset"), **arguments)
        assert not os.path.exists(fresh), overrides
    with pytest.raises(
        ValueError, match=r"already holds a finished run \(unet on shapes\)\. Choose another"
    ):
        _tiny("unet", existing)
    with pytest.raises(ValueError, match="has finished"):
        _tiny("unet", existing, resume=True)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(existing, unfinished)
    os.remove(unfinished / "metrics.json")
    with pytest.raises(ValueError, match=r"holds a run \(unet on shapes\)\. Resume it with"):
        _tiny("unet", str(unfinished))
    # resume a run folder of another model
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(os.path.join(existing, "run.json"), other / "run.json")
    with pytest.raises(
        ValueError, match="Cannot resume.*model_name='convnext_atto' \\(the run has 'unet'\\)"
    ):
        _tiny("convnext_atto", str(other), resume=True)
    # the command: one line, no traceback
    with pytest.raises(SystemExit, match="^keras-cvlec train: Unknown `model_name`: 'resnet7'"):
        cli.main(["train", "--model", "resnet7", "--dataset", "shapes", "--output", fresh])
    with pytest.raises(SystemExit, match="^keras-cvlec train: Unknown recipe option.*'mix'"):
        cli.main(
            [
                "train",
                "--model",
                "unet",
                "--dataset",
                "shapes",
                "--output",
                fresh,
                "--recipe-options",
                "mix=0",
            ]
        )
    with pytest.raises(SystemExit, match="^keras-cvlec evaluate: No model file"):
        cli.main(["evaluate", str(tmp_path / "missing.keras"), "--dataset", "shapes"])


def test_a_diverging_run_stops_with_an_error_and_leaves_nothing(tmp_path, capsys):
    output_dir = tmp_path / "diverged"
    with pytest.raises(
        TrainingDivergedError, match="loss became (nan|inf).*epoch 1.*lower learning"
    ):
        _tiny("unet", str(output_dir), learning_rate=1e30)
    # It failed in its first epoch: no folder blocks the same command.
    assert not output_dir.exists()
    with pytest.raises(SystemExit, match="^keras-cvlec train: Training diverged"):
        cli.main(
            [
                "train",
                "--model",
                "unet",
                "--dataset",
                "shapes",
                "--image-size",
                "16",
                "--num-images",
                "16",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "--model-options",
                "filters=4",
                "depth=2",
                "--learning-rate",
                "1e30",
                "--output",
                str(output_dir),
                "--verbose",
                "0",
            ]
        )
    assert not output_dir.exists()


def test_output_folders_of_the_user_are_never_overwritten(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.keras").write_text("my own model")
    for folder in (mine, mine / "best.keras"):
        with pytest.raises(ValueError, match="not a run|is a file"):
            _tiny("unet", str(folder))
    assert (mine / "best.keras").read_text() == "my own model"
    assert sorted(os.listdir(mine)) == ["best.keras"]


def test_a_run_killed_after_its_last_epoch_resumes_by_evaluating(unet_run, tmp_path):
    finished, metrics = unet_run
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    os.remove(copy / "metrics.json")
    trained = os.path.getmtime(copy / "last.keras")
    assert _tiny("unet", str(copy), resume=True) == metrics
    assert os.path.getmtime(copy / "last.keras") == trained  # not trained again
    assert [row["epoch"] for row in read_log(str(copy / "log.csv"))] == [0, 1]


def _segmentation_folder(root, count=20, size=16):
    """Image/mask pairs: a bright square (class 2) on a dark left (0) and
    grey right half (1), its outline marked void (255)."""
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for index in range(count):
        mask = np.zeros((size, size), "uint8")
        mask[:, size // 2 :] = 1
        top, left = rng.integers(2, size - 8, 2)
        mask[top : top + 6, left : left + 6] = 2
        mask[top - 1, left - 1 : left + 7] = mask[top + 6, left - 1 : left + 7] = 255
        image = np.stack([np.array([20, 120, 240, 0])[np.minimum(mask, 3)]] * 3, -1)
        Image.fromarray(image.astype("uint8")).save(root / "images" / f"{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")


def test_train_on_a_folder_with_void_pixels_bad_files_and_no_test_split(tmp_path, capsys):
    from keras_cvlec.data import load_dataset

    folder = tmp_path / "data"
    _segmentation_folder(folder)
    (folder / "images" / "broken.png").write_bytes(PNG_SIGNATURE + b"not an image")
    Image.fromarray(np.zeros((16, 16), "uint8")).save(folder / "masks" / "broken.png")
    output_dir = tmp_path / "run"
    arguments = dict(
        epochs=1,
        batch_size=8,
        image_size=16,
        model_options=UNET,
        verbose=0,
        output_dir=str(output_dir),
    )
    with pytest.raises(ValueError, match="(?s)broken.png.*skip_bad_files=True"):
        train("unet", str(folder), **arguments)
    assert not output_dir.exists()
    with pytest.warns(UserWarning, match="[Ss]kipp"):
        metrics = train("unet", str(folder), skip_bad_files=True, seed=3, **arguments)
    assert metrics["test"] is None and "no test split" in metrics["note"]
    assert list(metrics["per_class"]) == ["validation"]
    stored = read_json(str(output_dir / "run.json"))
    assert stored["ignore_class"] == 255 and stored["num_classes"] == 3
    assert stored["splits"] == ["train", "validation"]
    # Void pixels are not counted: the report covers the other pixels only.
    validation, _ = load_dataset(
        str(folder), "validation", image_size=16, skip_bad_files=True, seed=3
    )
    masks = np.concatenate([y.numpy() for _, y in validation])
    assert 255 in masks
    matrix = np.array(metrics["per_class"]["validation"]["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == (masks != 255).sum()
    # evaluate loads the folder as the run did: its seed carves the same
    # validation images (seed 0 would take others).
    results = evaluate(str(output_dir / "best.keras"), str(folder), split="validation")
    assert results == pytest.approx(metrics["validation"], abs=1e-6)
    # A folder whose masks lack the model's last class has the model's classes.
    no_squares = tmp_path / "no_squares"
    _segmentation_folder(no_squares, count=4)
    for mask_file in (no_squares / "masks").iterdir():
        mask = np.asarray(Image.open(mask_file))
        Image.fromarray(np.where(mask == 2, 1, mask).astype("uint8")).save(mask_file)
    report = evaluate(
        str(output_dir / "best.keras"), str(no_squares), split="train", per_class=True
    )
    assert report["per_class"]["per_class"]["2"]["support"] == 0
    with pytest.raises(SystemExit, match="^keras-cvlec train: .*ignore_class.*folders"):
        cli.main(
            [
                "train",
                "--model",
                "unet",
                "--dataset",
                "shapes",
                "--ignore-class",
                "none",
                "--output",
                str(tmp_path / "shapes"),
            ]
        )


def test_train_without_its_plotting_packages_fails_before_loading(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else find_spec(name, *args),
    )
    with pytest.raises(
        SystemExit, match="^keras-cvlec train: .*matplotlib.*keras-cvlec\\[train\\]"
    ):
        cli.main(
            ["train", "--model", "unet", "--dataset", "shapes", "--output", str(tmp_path / "run")]
        )
    assert not (tmp_path / "run").exists()


def test_an_interrupted_command_says_whether_it_can_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C: exit status 130 and one line, no traceback."""
    from keras_cvlec.training import run as training_run

    output = tmp_path / "run"
    command = ["train", "--model", "unet", "--dataset", "shapes", "--image-size", "16",
               "--num-images", "8", "--model-options", "filters=4", "depth=1",
               "--output", str(output)]  # fmt: skip

    def interrupted(run, verbose):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_run, "run_training", interrupted)
    assert cli.main(command) == 130
    assert capsys.readouterr().err.endswith("interrupted. No run folder kept.\n")
    output.mkdir()
    (output / "run.json").write_text("{}")  # as a run stopped after its first epoch
    monkeypatch.setattr(training_run, "_check_run_folder", lambda *args: None)
    assert cli.main(command) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted. Continue it with the same command and --resume.\n"
    )
