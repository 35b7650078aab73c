"""A run killed with SIGKILL mid-training finishes with `--resume`, also
one stored before an option existed; a resumed run on a `tf.data` split
trains the weights of a run not stopped."""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_cvlec.training import run as training_run
from keras_cvlec.training import train
from keras_cvlec.training.callbacks import (
    EPOCH_END,
    AtomicModelCheckpoint,
    ResumableBackup,
    backup_progress,
    read_log,
    remove_partial_checkpoints,
)
from keras_cvlec.training.files import read_json, write_json

EPOCHS = 2


def _backed_up_epochs(backup_dir):
    try:
        return backup_progress(backup_dir)[0]
    except ValueError:  # the metadata is being written
        return 0


def test_killed_run_resumes_with_a_complete_log(tmp_path):
    output_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "keras_cvlec.cli",
        "train",
        "--model",
        "unet",
        "--dataset",
        "shapes",
        "--image-size",
        "16",
        "--num-images",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        str(EPOCHS),
        "--model-options",
        "filters=4",
        "depth=2",
        "--backup-every",
        "3",
        "--output",
        str(output_dir),
        "--verbose",
        "2",
    ]
    environment = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    log = output_dir / "log.csv"
    process = subprocess.Popen(
        command, env=environment, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        # Kill once the first epoch is backed up, in the middle of the second.
        while _backed_up_epochs(output_dir / "backup") < 1:
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.02)
        process.kill()
    finally:
        process.kill()
        process.wait()
    killed_rows = read_log(log)
    _, killed_batch = backup_progress(output_dir / "backup")
    assert len(killed_rows) < EPOCHS and not (output_dir / "metrics.json").exists(), (
        "the kill landed after training ended"
    )
    assert (output_dir / "backup").exists()

    resumed = subprocess.run(
        command + ["--resume"], env=environment, cwd=root, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # A backup within an epoch: the warning says its batches are trained again.
    warned = f"after batch {killed_batch + 1} of epoch 2" in resumed.stderr
    assert warned == (killed_batch != EPOCH_END), resumed.stderr
    assert [row["epoch"] for row in read_log(log)] == list(range(EPOCHS))
    assert read_log(log)[: len(killed_rows)] == killed_rows
    # It continued from the backup instead of starting over.
    assert "Epoch 1/" not in resumed.stdout and f"Epoch {EPOCHS}/{EPOCHS}" in resumed.stdout
    assert (output_dir / "metrics.json").exists()
    assert not (output_dir / "backup").exists()


def test_a_checkpoint_killed_while_saving_leaves_the_previous_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "last.keras"
    checkpoint = AtomicModelCheckpoint(str(path))
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    saved = path.read_bytes()
    keras.saving.load_model(path)

    def killed_while_writing(filepath, **kwargs):
        with open(filepath, "wb") as file:
            file.write(saved[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save", killed_while_writing)
    try:
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    except KeyboardInterrupt:
        pass
    assert path.read_bytes() == saved  # the previous checkpoint, whole
    assert remove_partial_checkpoints(str(tmp_path)) == [f"last.tmp{os.getpid()}.keras"]
    assert os.listdir(tmp_path) == ["last.keras"]


def test_a_run_stored_before_an_option_existed_resumes(tmp_path):
    """A `run.json` without an option or recipe field that a later version
    added stands for its default: the run resumes. Another value of it is
    still refused."""
    output_dir = str(tmp_path / "run")
    arguments = dict(
        output_dir=output_dir,
        epochs=1,
        batch_size=8,
        image_size=16,
        num_images=16,
        model_options={"filters": 4, "depth": 1},
        verbose=0,
    )
    metrics = train("unet", "shapes", **arguments)
    os.remove(os.path.join(output_dir, "metrics.json"))  # killed after its last epoch
    run_file = os.path.join(output_dir, "run.json")
    stored = read_json(run_file)
    del stored["args"]["skip_bad_files"]
    del stored["args"]["recipe"]["gradient_accumulation_steps"]
    del stored["resolved_recipe"]["gradient_accumulation_steps"]
    write_json(run_file, stored)
    with pytest.raises(
        ValueError,
        match=r"Cannot resume the run in .* with other settings: "
        r"skip_bad_files=True \(the run has False\)\.$",
    ):
        train("unet", "shapes", resume=True, skip_bad_files=True, **arguments)
    with pytest.raises(
        ValueError,
        match=r"Cannot resume .*: recipe=\{.*'gradient_accumulation_steps': 2\} "
        r"\(the run has \{.*'gradient_accumulation_steps': 1\}\)\.$",
    ):
        train(
            "unet",
            "shapes",
            resume=True,
            recipe_options={"gradient_accumulation_steps": 2},
            **arguments,
        )
    assert train("unet", "shapes", resume=True, **arguments) == metrics


class _Stopped(Exception):
    pass


class _StopAfterFirstBackup(keras.callbacks.Callback):
    """Stops the run once its first epoch is logged and backed up, before
    its checkpoints are written."""

    def on_epoch_end(self, epoch, logs=None):
        raise _Stopped


def _stopped_after_the_backup(callbacks):
    backup = next(i for i, c in enumerate(callbacks) if isinstance(c, ResumableBackup))
    return [*callbacks[: backup + 1], _StopAfterFirstBackup(), *callbacks[backup + 1 :]]


class _CheckRestoredCheckpoints(keras.callbacks.Callback):
    """Checks, as the resumed run begins, that its folder's checkpoints hold
    the restored weights."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def on_train_begin(self, logs=None):
        restored = [keras.ops.convert_to_numpy(weight) for weight in self.model.weights]
        for name in ("last.keras", "best.keras"):
            for a, b in zip(_weights(self.output_dir, name), restored, strict=True):
                np.testing.assert_array_equal(a, b)


def _weights(output_dir, name="last.keras"):
    model = keras.saving.load_model(os.path.join(output_dir, name), compile=False)
    return [keras.ops.convert_to_numpy(weight) for weight in model.weights]


def test_a_resumed_run_on_a_tf_data_split_trains_the_weights_of_a_run_not_stopped(
    tmp_path, monkeypatch
):
    """A folder of images is a `tf.data` split, reshuffled at every epoch:
    a run stopped after its first epoch and resumed takes the examples of
    its second epoch in the order of a run not stopped, and ends with its
    weights (no augmentation: Keras's augmentation layers draw from a
    random state that the backup does not hold). Stopped after the first
    epoch's backup but before its checkpoints, it writes them when it
    resumes."""
    image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "images"
    for name in ("images", "masks"):
        (folder / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(16):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype="uint8")
        image.fromarray(pixels).save(folder / "images" / f"{index}.png")
        image.fromarray((pixels[..., 0] > 127).astype("uint8")).save(
            folder / "masks" / f"{index}.png"
        )
    arguments = dict(
        epochs=2,
        batch_size=4,
        image_size=16,
        recipe_options={"augment": False},
        model_options={"filters": 4, "depth": 1},
        verbose=0,
    )
    train("unet", str(folder), output_dir=str(tmp_path / "not_stopped"), **arguments)
    stopped = str(tmp_path / "stopped")
    with monkeypatch.context() as patch:
        callbacks = training_run._callbacks
        patch.setattr(
            training_run, "_callbacks", lambda run: _stopped_after_the_backup(callbacks(run))
        )
        with pytest.raises(_Stopped):
            train("unet", str(folder), output_dir=stopped, **arguments)
    assert backup_progress(os.path.join(stopped, "backup")) == (1, EPOCH_END)
    assert not os.path.exists(os.path.join(stopped, "last.keras"))
    with monkeypatch.context() as patch:
        patch.setattr(
            training_run,
            "_callbacks",
            lambda run: [*callbacks(run), _CheckRestoredCheckpoints(stopped)],
        )
        train("unet", str(folder), output_dir=stopped, resume=True, **arguments)
    assert [row["epoch"] for row in read_log(os.path.join(stopped, "log.csv"))] == [0, 1]
    difference = max(
        float(np.abs(a - b).max())
        for a, b in zip(_weights(stopped), _weights(str(tmp_path / "not_stopped")))
    )
    assert difference < 1e-5


def test_epoch_order_gives_each_epoch_its_pass():
    """`fit` reads a PyDataset before its first epoch and ends a pass there;
    with `EpochOrder`, epoch e still takes pass e's order `(seed, e)`."""
    from keras_cvlec.data import ArrayDataset
    from keras_cvlec.training.callbacks import EpochOrder

    seen = []

    def record(images, targets):
        seen[-1].extend(np.asarray(targets)[:, 0].astype(int).tolist())
        return images, targets

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([])

    rows = np.arange(12)
    dataset = ArrayDataset(
        rows[:, None].astype("float32"),
        rows[:, None].astype("float32"),
        batch_size=4,
        shuffle=True,
        seed=3,
        transform=record,
    )
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    seen.append([])  # what fit reads before its first epoch
    model.fit(
        dataset, epochs=3, shuffle=False, verbose=0, callbacks=[Epochs(), EpochOrder(dataset)]
    )
    for epoch, order in enumerate(seen[1:]):
        assert order == np.random.default_rng([3, epoch]).permutation(12).tolist(), epoch


def test_restored_checkpoints_hold_the_moving_averages_with_ema(tmp_path):
    """With EMA, the checkpoints hold the averaged weights (as after
    `SwapEMAWeights`), and the model trains on with its own."""
    from keras_cvlec.training.callbacks import RestoredCheckpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.5), "mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    for _ in range(3):  # not `fit`, which ends by copying the averages into the model
        model.train_on_batch(x, x[:, :2] * 3)
    trained = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    averages = [
        keras.ops.convert_to_numpy(w) for w in model.optimizer._model_variables_moving_average
    ]
    assert max(float(np.abs(a - b).max()) for a, b in zip(trained, averages)) > 1e-3
    paths = [str(tmp_path / "last.keras"), str(tmp_path / "best.keras")]
    for ema, expected in ((True, averages), (False, trained)):
        checkpoints = RestoredCheckpoints(paths, ema=ema)
        checkpoints.set_model(model)
        checkpoints.on_train_begin()
        for path in paths:
            saved = keras.saving.load_model(path, compile=False).trainable_weights
            for a, b in zip(saved, expected, strict=True):
                np.testing.assert_allclose(keras.ops.convert_to_numpy(a), b, atol=1e-7)
        # (TensorFlow swaps by adding and subtracting: exact to rounding.)
        for a, b in zip(model.trainable_weights, trained, strict=True):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(a), b, atol=1e-6)
