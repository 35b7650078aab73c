"""benchmarks/throughput.py and benchmarks/accelerator.py: their tables,
arguments and worker processes with made-up measurements, and one tiny real
measurement each on the current backend; the models benchmarks/torch_gap.py
splits the torch gap with."""

import json
import math
import os
import sys

import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec.utils import count_macs

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
import accelerator  # noqa: E402
import throughput  # noqa: E402
import timing  # noqa: E402

# The real measurements train a one-level U-Net of 4 filters on 16² images.
SMALL_UNET = {"filters": 4, "depth": 1}

TORCH_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="plain PyTorch models, and torch_gap.py's, are timed on torch only",
)


@pytest.fixture
def small_unet(monkeypatch):
    monkeypatch.setitem(timing.MODELS, "unet", ("unet", SMALL_UNET, SMALL_UNET))
    return keras_cvlec.build_unet(num_classes=2, input_shape=(16, 16, 3), **SMALL_UNET)


@pytest.mark.backend_independent
def test_rows_are_medians_and_quotients():
    seconds = {"ours": [2.0, 1.0, 1.2], "keras.applications.ResNet50": [3.0, 4.0, 3.0]}
    macs = {"ours": 10**9, "keras.applications.ResNet50": 2 * 10**9}
    ours, application = throughput.make_rows("jax", "resnet50", macs, seconds, 30, 1e12)
    assert ours["images_per_second"] == pytest.approx(25.0)  # 30 / median 1.2
    assert application["images_per_second"] == pytest.approx(10.0)
    assert ours["ours_over_this"] == 1.0
    assert application["ours_over_this"] == pytest.approx(2.5)
    # MACs x 2 FLOPs x 3 (forward and backward) x images/s / matmul FLOP/s.
    assert ours["matmul_fraction"] == pytest.approx(0.15)
    assert application["matmul_fraction"] == pytest.approx(0.12)
    assert [row["implementation"] for row in (ours, application)] == list(seconds)
    assert {row["backend"] for row in (ours, application)} == {"jax"}
    assert application["macs_per_image"] == 2 * 10**9
    assert application["matmul_flops_per_second"] == 1e12


def _throughput_result(backend):
    return {
        "device": "CPU test (2 cores)",
        "rows": throughput.make_rows(
            backend,
            "unet",
            {"ours": 10**9, "other": 10**9},
            {"ours": [1.0], "other": [4.0]},
            8,
            4.5e11,
        ),
    }


@pytest.mark.backend_independent
def test_throughput_main_runs_a_worker_per_backend(monkeypatch, tmp_path, capsys):
    calls = []

    def run_worker(script, backend, arguments):
        calls.append((script, backend, arguments))
        if backend == "jax":
            return {"backend": "jax", "error": "exit 1"}
        return _throughput_result(backend)

    monkeypatch.setattr(timing, "run_worker", run_worker)
    output = tmp_path / "out.json"
    argv = ["--tiny", "--backends", "torch", "jax", "--models", "unet", "--jit-compile"]
    assert throughput.main([*argv, "--rounds", "2", "--json", str(output)]) == 1  # jax failed
    assert [(script, backend) for script, backend, _ in calls] == [
        (throughput.SCRIPT, "torch"),
        (throughput.SCRIPT, "jax"),
    ]
    # The worker parses what it is passed into the same settings.
    passed = throughput.parse_args(calls[0][2])
    expected = throughput.parse_args([*argv, "--rounds", "2"])
    for field in ("tiny", "models", "jit_compile", "channels_last", "steps", "rounds", "warmup"):
        assert getattr(passed, field) == getattr(expected, field), field
    assert (passed.batch_size, passed.image_size, passed.rounds, passed.steps) == (2, 32, 2, 1)
    assert passed.warmup == 1
    printed = capsys.readouterr().out
    assert "32² images, batch 2, 2 rounds of 1 steps" in printed
    assert "torch: CPU test (2 cores), float32 matmul 450-450 GFLOP/s" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[1:] == [
        "| torch | unet | ours | 8.0 | 1.00 | 11 % |",
        "| torch | unet | other | 2.0 | 4.00 | 3 % |",
        "| jax | failed (exit 1) |||||",
    ]
    saved = json.loads(output.read_text())["results"]
    assert [result["backend"] for result in saved] == ["torch", "jax"]
    assert saved[0]["rows"][1]["ours_over_this"] == pytest.approx(4.0)
    calls.clear()
    monkeypatch.setattr(timing, "installed_backends", lambda: ("tensorflow",))
    assert throughput.main(["--tiny"]) == 0
    assert [backend for _, backend, _ in calls] == ["tensorflow"]
    assert throughput.parse_args(calls[0][2]).models is None  # every model


def _accelerator_row(backend, model):
    return {
        "backend": backend,
        "model": model,
        "variant": f"{model}_variant",
        "device": "NVIDIA Test",
        "images_per_second": 1234.56,
        "peak_memory_bytes": 3 * 2**29,
        "memory_kind": "device" if backend == "jax" else "RSS",
        "macs_per_image": 4_100_000_000,
        "matmul_flops_per_second": 7.5e14,
        "mfu": 0.0405,
    }


@pytest.mark.backend_independent
def test_accelerator_main_runs_a_worker_per_backend_and_model(monkeypatch, tmp_path, capsys):
    calls = []

    def run_worker(script, backend, arguments):
        calls.append((script, backend, arguments))
        model = accelerator.parse_args(arguments).model
        if backend == "torch" and model == "unet":
            return {"backend": "torch", "error": "exit 1"}
        return _accelerator_row(backend, model)

    monkeypatch.setattr(timing, "run_worker", run_worker)
    output = tmp_path / "out.json"
    argv = ["--backends", "jax", "torch", "--models", "resnet50", "unet", "--steps", "3"]
    assert accelerator.main([*argv, "--no-jit-compile", "--json", str(output)]) == 1
    assert [(backend, accelerator.parse_args(a).model) for _, backend, a in calls] == [
        ("jax", "resnet50"),
        ("jax", "unet"),
        ("torch", "resnet50"),
        ("torch", "unet"),
    ]
    passed = accelerator.parse_args(calls[0][2])
    assert (passed.steps, passed.batch_size, passed.image_size) == (3, 64, 224)
    assert (passed.tiny, passed.jit_compile) == (False, False)
    printed = capsys.readouterr().out
    assert "Device: NVIDIA Test" in printed
    assert "jit_compile=auto, mixed_bfloat16, 224² images, batch 64, 3 timed steps" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[1:] == [
        "| jax | resnet50_variant | 1234.6 | 1.50 GiB | 4.100 | 750.000 | 4.0 % |",
        "| jax | unet_variant | 1234.6 | 1.50 GiB | 4.100 | 750.000 | 4.0 % |",
        "| torch | resnet50_variant | 1234.6 | 1.50 GiB (RSS) | 4.100 | 750.000 | 4.0 % |",
        "| torch | unet | failed (exit 1) |||||",
    ]
    rows = json.loads(output.read_text())["rows"]
    assert rows[3] == {"backend": "torch", "error": "exit 1", "model": "unet"}
    calls.clear()
    assert accelerator.main(["--tiny", "--backends", "jax", "--models", "unet"]) == 0
    passed = accelerator.parse_args(calls[0][2])
    assert (passed.tiny, passed.jit_compile, passed.steps, passed.image_size) == (True, True, 2, 32)
    assert "jit_compile=True" in capsys.readouterr().out


WORKER = """\
import json, os, sys
if "--fail" in sys.argv:
    sys.exit(3)
with open(sys.argv[sys.argv.index("--worker-json") + 1], "w") as file:
    json.dump({"arguments": sys.argv[1:-2], "backend": os.environ["KERAS_BACKEND"]}, file)
"""


@pytest.mark.backend_independent
def test_run_worker_and_median(tmp_path, monkeypatch):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    assert timing.run_worker(str(script), "torch", ["--steps=2", "--tiny"]) == {
        "arguments": ["--steps=2", "--tiny"],
        "backend": "torch",
    }
    assert timing.run_worker(str(script), "jax", ["--fail"]) == {
        "backend": "jax",
        "error": "exit 3",
    }
    # Calls of 5, 1 and 3 seconds after two untimed ones: median 3 (mean 3.5 with
    # the warm-up calls, 3 without).
    clock = iter([0, 5, 10, 11, 20, 23])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    assert timing.median_seconds(lambda: calls.append(1), warmup=2, repeats=3) == 3
    assert len(calls) == 5


def _assert_positive_finite(value):
    assert value > 0 and math.isfinite(value), value


def test_throughput_on_this_backend(small_unet):
    args = throughput.parse_args(["--tiny", "--models", "unet", "--image-size", "16"])
    result = throughput.run_backend(args)
    assert result["device"].startswith("CPU ")
    (row,) = result["rows"]  # keras.applications has no U-Net
    assert (row["backend"], row["model"], row["implementation"]) == (
        keras.backend.backend(),
        "unet",
        "ours",
    )
    _assert_positive_finite(row["images_per_second"])
    _assert_positive_finite(row["matmul_flops_per_second"])
    assert row["ours_over_this"] == 1.0
    assert row["macs_per_image"] == count_macs(small_unet) > 0
    assert 0 < row["matmul_fraction"] <= 1
    assert row["matmul_fraction"] == pytest.approx(
        row["macs_per_image"] * 6 * row["images_per_second"] / row["matmul_flops_per_second"]
    )


def test_accelerator_on_this_backend(small_unet):
    argv = ["--tiny", "--model", "unet", "--image-size", "16", "--steps", "1"]
    if keras.backend.backend() == "torch":
        # torch.compile takes minutes for this U-Net on a CPU (keras 3.15's
        # layers recompile until dynamo's limit), so torch runs eagerly here.
        argv.append("--no-jit-compile")
    row = accelerator.run_model(accelerator.parse_args(argv))
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert (row["backend"], row["model"], row["device"][:4]) == (
        keras.backend.backend(),
        "unet",
        "CPU ",
    )
    assert (row["image_size"], row["batch_size"], row["steps"]) == (16, 2, 1)
    assert row["macs_per_image"] == count_macs(small_unet) > 0
    _assert_positive_finite(row["images_per_second"])
    _assert_positive_finite(row["matmul_flops_per_second"])
    # The peak resident set size: at least the interpreter and the backend.
    assert row["memory_kind"] == "RSS" and row["peak_memory_bytes"] > 100 * 2**20
    assert 0 < row["mfu"] <= 1
    assert row["mfu"] == pytest.approx(
        row["macs_per_image"] * 6 * row["images_per_second"] / row["matmul_flops_per_second"]
    )


@TORCH_ONLY
def test_plain_torch_resnet50_is_ours_in_pytorch():
    """Our v1 ResNet-50's trainable parameters (torchvision's 25,557,032 and
    the convolutions' biases) and the MACs count_macs gives it; one training
    step changes it."""
    import torch

    model, _ = throughput._plain_torch_resnet50(1000)
    ours = keras_cvlec.build_resnet("resnet50", version="v1", input_shape=(64, 64, 3))
    trainable = sum(math.prod(w.shape) for w in ours.trainable_weights)
    assert sum(p.numel() for p in model.parameters()) == trainable == 25_583_592
    macs = []

    def count(layer, inputs, output):
        weight = layer.weight
        macs.append(output.numel() * weight[0].numel() if weight.ndim == 4 else weight.numel())

    for layer in model.modules():
        if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear):
            layer.register_forward_hook(count)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    assert sum(macs) == count_macs(ours)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    before = [p.detach().clone() for p in model.parameters()]
    step = throughput._torch_step(model.train(), x, np.array([1, 2]), channels_last=True)
    step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@TORCH_ONLY
def test_torch_gap_without_batch_norm_keeps_the_trainable_parameters():
    """torch_gap's `--without-batch-norm` models: a per-channel scale and
    offset at each of ResNet-50's 53 normalisations, the same trainable
    parameters as with them and no statistics."""
    import torch
    import torch_gap

    ours = torch_gap.keras_model("channels_first", 32, batch_norm=False)
    layers = list(ours._flatten_layers())
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)
    assert sum(isinstance(layer, torch_gap.ChannelAffine) for layer in layers) == 53
    assert sum(math.prod(w.shape) for w in ours.trainable_weights) == 25_583_592
    assert ours.non_trainable_weights == []
    assert keras.layers.BatchNormalization.__module__.startswith("keras.")

    plain, _ = throughput._plain_torch_resnet50(1000, torch_gap.TorchChannelAffine)
    modules = list(plain.modules())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in modules)
    assert sum(isinstance(module, torch_gap.TorchChannelAffine) for module in modules) == 53
    assert sum(p.numel() for p in plain.parameters()) == 25_583_592

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    gamma, beta = rng.normal(size=(2, 3)).astype("float32")
    affine = torch_gap.ChannelAffine(axis=1)
    affine.build(x.shape)
    affine.set_weights([gamma.reshape(1, 3, 1, 1), beta.reshape(1, 3, 1, 1)])
    expected = x * gamma[:, None, None] + beta[:, None, None]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(affine(x)), expected, rtol=1e-6)
    module = torch_gap.TorchChannelAffine(3)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma).reshape(3, 1, 1))
        module.bias.copy_(torch.from_numpy(beta).reshape(3, 1, 1))
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), expected, rtol=1e-6)
