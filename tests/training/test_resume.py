"""A run killed with SIGKILL mid-training finishes with `--resume`, also
one stored before an option existed."""

import os
import subprocess
import sys
import time

import keras
import pytest

from keras_cvlec.training import train
from keras_cvlec.training.callbacks import (
    AtomicModelCheckpoint,
    backup_epoch,
    read_log,
    remove_partial_checkpoints,
)
from keras_cvlec.training.files import read_json, write_json

EPOCHS = 2


def _backed_up_epochs(backup_dir):
    try:
        return backup_epoch(backup_dir)
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
    assert len(killed_rows) < EPOCHS and not (output_dir / "metrics.json").exists(), (
        "the kill landed after training ended"
    )
    assert (output_dir / "backup").exists()

    resumed = subprocess.run(
        command + ["--resume"], env=environment, cwd=root, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
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
