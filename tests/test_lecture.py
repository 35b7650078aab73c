"""The lecture scripts in examples/lecture/ run in-process with `--quick`:
their checked numbers hold, they write a PNG and a JSON, and they refuse a
folder holding someone else's files."""

import importlib.util
import json
import math
import os

import pytest

LECTURE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "lecture"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLAIMS = ["depthwise", "gelu", "label_smoothing"]


def load(name):
    spec = importlib.util.spec_from_file_location(
        f"lecture_{name}", os.path.join(LECTURE, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name, out):
    assert load(name).main(["--quick", "--out", str(out)]) == 0
    with open(out / f"{name}.png", "rb") as f:
        assert f.read(len(PNG_MAGIC)) == PNG_MAGIC
    with open(out / f"{name}.json") as f:
        results = json.load(f)
    assert all(results["checks"].values()), results["checks"]
    return results


def test_depthwise_counts_match_formulas(tmp_path):
    results = run("depthwise", tmp_path / "out")
    c, k, hw = 8, 7, 8 * 8
    rows = {row["name"]: row for row in results["layers"]}
    assert rows["dense_7x7"]["macs"] == k * k * c * c * hw
    assert rows["depthwise_7x7_pointwise_1x1"]["macs"] == (k * k * c + c * c) * hw
    assert rows["convnext_block"]["macs"] == (k * k * c + 8 * c * c) * hw
    assert rows["resnet_bottleneck_block"]["macs"] == (2 * c * (c // 4) + 9 * (c // 4) ** 2) * hw
    assert results["separable_over_dense_macs"] == pytest.approx(1 / c + 1 / k**2, rel=1e-12)
    for row in results["layers"]:
        assert row["params"] == row["params_formula"]
        assert row["train_images_per_s"] > 0


def test_gelu_numbers(tmp_path):
    results = run("gelu", tmp_path / "out")
    assert 0 < results["tanh_approximation_max_abs_error"] < 1e-3
    assert results["keras_exact_vs_erf_reference_max_abs_error"] < 1e-5
    assert results["gelu_relu_gap_at_abs_x_4"] < 1e-3
    assert results["gelu_relu_max_gap_abs_x_le_1"] > 0.1
    mc = results["monte_carlo"]
    assert mc["samples_per_point"] == 20000
    for x, estimate, se in zip(mc["x"], mc["estimate"], mc["standard_error"]):
        exact = x * load("gelu").phi_cdf(x)
        assert abs(estimate - exact) <= 4 * se


def test_label_smoothing_numbers(tmp_path):
    results = run("label_smoothing", tmp_path / "out")
    module = load("label_smoothing")
    # Hand-computed: bin [0.9, 1) holds 0.95, 0.95 and 1.0 (one of three
    # right): |1/3 - 0.9667| * 3/6; bin [0.6, 0.7) holds 0.65 three times
    # (two right): |2/3 - 0.65| * 3/6. ECE = 0.31667 + 0.00833 = 0.325.
    bins = module.calibration_bins([0.95, 0.95, 1.0, 0.65, 0.65, 0.65], [1, 0, 0, 1, 1, 0], 10)
    assert bins["counts"] == [0, 0, 0, 0, 0, 0, 3, 0, 0, 3]
    assert bins["ece"] == pytest.approx(0.325, abs=1e-12)
    assert module.calibration_bins([0.55, 0.55], [1, 0], 10)["ece"] == pytest.approx(0.05)
    assert results["models"]["no_smoothing"]["optimal_logit_gap"] is None
    assert results["models"]["smoothing"]["optimal_logit_gap"] == pytest.approx(math.log(28))
    test_images, sigmas = 32, [0.0, 0.1]
    assert results["settings"]["sigmas"] == sigmas
    for model in results["models"].values():
        calibration = model["calibration"]
        assert sum(calibration["counts"]) == test_images and len(calibration["counts"]) == 15
        ece = sum(
            count * abs(accuracy - confidence)
            for count, accuracy, confidence in zip(
                calibration["counts"], calibration["accuracy"], calibration["mean_confidence"]
            )
            if count
        )
        assert all(
            (count == 0) == (accuracy is None)
            for count, accuracy in zip(calibration["counts"], calibration["accuracy"])
        )
        assert calibration["ece"] == pytest.approx(ece / test_images)
        (run_,) = model["runs"]
        assert len(run_["noisy_accuracy"]) == len(sigmas)
        for accuracy in run_["noisy_accuracy"]:
            assert accuracy * test_images == pytest.approx(round(accuracy * test_images))
        # -mean_k log p_k >= log K (Jensen), so the smoothed loss is at least
        # (1 - e) * NLL + e * log K; without smoothing it is the NLL.
        e = model["label_smoothing"]
        assert run_["test_loss"] >= (1 - e) * run_["test_nll"] + e * math.log(3) - 1e-9
        assert e > 0 or run_["test_loss"] == run_["test_nll"]
        assert 1 / 3 <= run_["mean_confidence"] <= 1
        assert run_["mean_logit_gap"] >= 0 and run_["final_kernel_norm"] > 0
        assert len(run_["kernel_norm_by_epoch"]) == 2  # initialisation and 1 epoch


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sigmas", "0.1", "0"], "--sigmas must increase from 0"),
        (["--smoothing", "0"], "--smoothing must be in"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_label_smoothing_refuses_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        load("label_smoothing").main([*argv, "--out", str(tmp_path / "out")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_rerun_into_own_folder_is_allowed(tmp_path):
    run("gelu", tmp_path)
    run("gelu", tmp_path)


@pytest.mark.parametrize("name", CLAIMS)
def test_foreign_files_are_refused(name, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not written by this script.*notes.txt"):
        load(name).main(["--quick", "--out", str(tmp_path)])
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_run_all_finds_every_claim_script():
    assert load("run_all").claim_scripts() == CLAIMS
