"""The lecture scripts in examples/lecture/ run in-process with `--quick`:
their checked numbers hold, they write a PNG and a JSON, and they refuse a
folder holding someone else's files."""

import importlib.util
import json
import os

import pytest

LECTURE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "lecture"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLAIMS = ["depthwise", "gelu", "resnet_vs_convnext"]


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


def convnext_counts(width, depths, size, classes):
    """Closed-form parameters and MACs of a ConvNeXt: 4x4 stem, blocks of a
    7x7 depthwise conv and a 4x MLP (8C^2 + 58C parameters with norm, biases
    and layer scale), 2x2 downsampling, norm and classifier."""
    params = 48 * width + width + 2 * width + 16 * width + 8 * width * classes + classes
    macs = (size // 4) ** 2 * 48 * width + 8 * width * classes
    for stage, depth in enumerate(depths):
        c, positions = width * 2**stage, (size // 4 // 2**stage) ** 2
        if stage:
            params += 2 * (c // 2) + 4 * (c // 2) * c + c
            macs += positions * 4 * (c // 2) * c
        params += depth * (8 * c * c + 58 * c)
        macs += depth * positions * (49 * c + 8 * c * c)
    return params, macs


def resnet18_macs(filters, size, classes):
    """Closed-form MACs of a ResNet-18: 7x7/2 stem, 3x3/2 pooling, two basic
    blocks a stage (the first of stages 2-4 strided, with a 1x1 projection)."""
    macs = (size // 2) ** 2 * 49 * 3 * filters + 8 * filters * classes
    for stage in range(4):
        c, positions = filters * 2**stage, (size // 4 // 2**stage) ** 2
        convs = 4 * 9 * c * c
        if stage:  # the first conv reads c / 2 channels; the projection
            convs += -9 * c * c + 9 * (c // 2) * c + (c // 2) * c
        macs += positions * convs
    return macs


def test_resnet_vs_convnext_counts_and_ablation(tmp_path):
    results = run("resnet_vs_convnext", tmp_path / "out")
    rows = {row["name"]: row for row in results["variants"]}
    assert sorted(rows) == ["convnext_atto", "resnet18"]
    # Parameters do not depend on the image size: torchvision's ResNet-18.
    assert rows["resnet18"]["trainable_params"] == 11_689_512
    assert rows["resnet18"]["macs"] == resnet18_macs(64, 32, 1000)
    params, macs = convnext_counts(40, (2, 2, 6, 2), 32, 1000)
    assert (rows["convnext_atto"]["params"], rows["convnext_atto"]["macs"]) == (params, macs)
    # The tiny models trained on the 3 shapes classes, their MACs matched.
    filters, matched = results["resnet_filters"], results["matched"]
    atto_macs = convnext_counts(40, (2, 2, 6, 2), 32, 3)[1]
    assert matched["convnext_atto"]["macs"] == atto_macs
    assert matched["resnet18"]["macs"] == resnet18_macs(filters, 32, 3)
    assert all(
        abs(resnet18_macs(filters, 32, 3) - atto_macs) <= abs(resnet18_macs(f, 32, 3) - atto_macs)
        for f in (filters - 1, filters + 1)
    )
    assert list(results["ablation"]) == ["full", "cosine"]
    runs = {(r["model"], r["removed"]): r for r in results["runs"]}
    assert len(runs) == len(results["runs"]) == 3
    for r in runs.values():
        assert r["updates"] == r["total_updates"] == 2  # 4 images in batches of 2
        assert r["test_images"] == 4
    # The recipes' learning rates; the ablated ResNet's cosine decays to 0,
    # its constant-rate copy stays at the peak.
    assert runs[("convnext_atto", None)]["peak_learning_rate"] == 4e-3
    assert runs[("convnext_atto", None)]["drop_path_rate"] == 0.1
    full, constant = runs[("resnet18", None)], runs[("resnet18", "cosine")]
    assert full["peak_learning_rate"] == constant["peak_learning_rate"] == 8e-3
    assert full["final_learning_rate"] == pytest.approx(0.0, abs=1e-9)
    assert constant["final_learning_rate"] == pytest.approx(8e-3, rel=1e-6)
    assert full["drop_path_rate"] == 0.05 and full["label_smoothing"] == 0.1


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
