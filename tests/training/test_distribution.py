"""Data-parallel training (`train(..., distribution=...)`, `--distribute`):
argument checks in this process, and two virtual CPU devices in a fresh one
(they must be set up before the backend starts)."""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_cvlec import cli
from keras_cvlec.training import train
from keras_cvlec.training.distribution import check_distribution, resolve_distribution
from keras_cvlec.training.files import read_json

SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_run.py")
TINY = dict(
    epochs=1,
    batch_size=8,
    image_size=16,
    num_images=16,
    model_options={"filters": 4, "depth": 1},
    verbose=0,
)


@pytest.mark.backend_independent
@pytest.mark.parametrize("value", ["mirrored", "", 2, True])
def test_a_bad_distribution_is_refused(value):
    with pytest.raises(
        ValueError,
        match=r"Unknown `distribution`: .*Allowed values: .none., .auto., .data-parallel.",
    ):
        check_distribution(value)


@pytest.mark.backend_independent
def test_none_is_one_device():
    assert check_distribution(None) == "none"
    assert resolve_distribution(None).to_json() == {
        "kind": "none",
        "num_devices": 1,
        "num_processes": 1,
    }


def test_auto_on_one_device_is_none_and_recorded(tmp_path):
    """This process sees one CPU device: `auto` trains on it, and run.json
    says so."""
    assert resolve_distribution("auto").kind == "none"
    train("unet", "shapes", output_dir=str(tmp_path / "run"), distribution="auto", **TINY)
    run = read_json(str(tmp_path / "run" / "run.json"))
    assert run["args"]["distribution"] == "auto"
    assert run["distribution"] == {"kind": "none", "num_devices": 1, "num_processes": 1}


def test_the_cli_passes_distribute(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "unet", "--dataset", "shapes", "--output", "x",
                  "--distribute", "mirrored"])  # fmt: skip
    assert "--distribute: invalid choice: 'mirrored'" in capsys.readouterr().err
    output = str(tmp_path / "run")
    cli.main(
        ["train", "--model", "unet", "--dataset", "shapes", "--output", output, "--epochs", "1",
         "--batch-size", "8", "--image-size", "16", "--num-images", "16", "--verbose", "0",
         "--model-options", "filters=4", "depth=1", "--distribute", "auto"]
    )  # fmt: skip
    assert read_json(os.path.join(output, "run.json"))["args"]["distribution"] == "auto"


def test_data_parallel_on_two_devices(tmp_path):
    """JAX and TensorFlow: two SGD steps of global batch 8 split over 2
    devices give the weights of one device on batch 8, and `train` on 2
    devices writes a complete run folder that records them. PyTorch: refused
    before anything is written, naming the backends that can."""
    output = str(tmp_path / "run")
    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match=r"jax or tensorflow backend.*'data-parallel'"):
            train("unet", "shapes", output_dir=output, distribution="data-parallel", **TINY)
        assert not os.path.exists(output)
        return
    result = subprocess.run(
        [sys.executable, SCRIPT, output],
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["change"] > 1e-3  # the steps moved the weights
    assert numbers["difference"] < 1e-5
    assert "must be a multiple of 2. Received: batch_size=7" in numbers["uneven_batch"]
    run = read_json(os.path.join(output, "run.json"))
    assert run["distribution"] == {"kind": "data-parallel", "num_devices": 2, "num_processes": 1}
    assert sorted(os.listdir(output)) == [
        "best.keras", "curves.png", "last.keras", "log.csv", "logs", "metrics.json",
        "per_class.png", "predictions.png", "run.json",
    ]  # fmt: skip
    assert len(read_json(os.path.join(output, "metrics.json"))["per_class"]["test"]) > 0
