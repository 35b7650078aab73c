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
CLAIMS = ["depthwise", "gelu", "per_pixel_vs_unet", "unet_skips"]


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


def conv_macs(size, channels):
    """MACs of a chain of "same" 3x3 convolutions `channels[0] -> channels[1] -> ...`."""
    return sum(9 * a * b for a, b in zip(channels, channels[1:])) * size * size


def check_segmentation_rows(results, names):
    # --quick: 4 test images, 4 classes, nothing trained.
    rows = {row["name"]: row for row in results["models"]}
    size = results["data"]["size"]
    for name in names:
        row = rows[name]
        assert row["output_shape"] == [4, size, size, 4]
        assert row["mean_iou"] == pytest.approx(row["keras_mean_iou"], abs=1e-5)
        assert 0 <= row["accuracy"] <= 1
        assert all(0 <= value <= 1 for value in row["band_iou"].values())
        assert row["losses"] == [] and row["train_images_per_s"] is None
    fractions = list(results["data"]["band_fraction_of_pixels"].values())
    assert 0 < fractions[0] < fractions[1] < fractions[2] < fractions[3] < 1
    return rows


def test_per_pixel_vs_unet_counts(tmp_path):
    results = run("per_pixel_vs_unet", tmp_path / "out")
    # --quick leaves the FCN out.
    rows = check_segmentation_rows(results, ["per_pixel", "unet"])
    assert list(rows) == ["per_pixel", "per_pixel_unet_widths", "unet"]
    assert not rows["per_pixel_unet_widths"]["scored"]
    # --quick: 32x32, U-Net depth 2 and 4 filters: 10 convolutions on the way through.
    s, f, head = 32, 4, 4 * 4 * 32 * 32
    assert rows["per_pixel"]["macs"] == conv_macs(s, [3] + [f] * 10) + head
    widths = [4, 4, 8, 8, 16, 16, 8, 8, 4, 4]
    assert rows["per_pixel_unet_widths"]["macs"] == conv_macs(s, [3, *widths]) + head
    assert rows["per_pixel"]["receptive_field_px"] == 21
    # U-Net: encoder, bottleneck, decoders (2x2 stride-2 transpose, then the
    # concatenated skip and up-sampled maps), head.
    unet = (
        conv_macs(32, [3, 4, 4])
        + conv_macs(16, [4, 8, 8])
        + conv_macs(8, [8, 16, 16])
        + 8 * 8 * 16 * 4 * 8
        + conv_macs(16, [16, 8, 8])
        + 16 * 16 * 8 * 4 * 4
        + conv_macs(32, [8, 4, 4])
        + head
    )
    assert rows["unet"]["macs"] == unet
    assert results["macs_over_unet"]["per_pixel_unet_widths"] == pytest.approx(
        rows["per_pixel_unet_widths"]["macs"] / unet
    )


def test_unet_skips_counts(tmp_path):
    results = run("unet_skips", tmp_path / "out")
    rows = check_segmentation_rows(
        results, ["unet", "no_skips", "unet_bilinear", "unet_max_unpool"]
    )
    # --quick: 16x16, depth 2, 4 filters. The skips add the w input channels
    # of decoder{l}_conv1: 9 w^2 weights at w = 4, 8.
    assert rows["unet"]["params"] - rows["no_skips"]["params"] == 9 * (4**2 + 8**2)
    # A 3x3 convolution (no bias) instead of the 2x2 transpose (with bias):
    # 16 -> 8 and 8 -> 4 channels.
    extra = (9 - 4) * (16 * 8 + 8 * 4) - (8 + 4)
    assert rows["unet_bilinear"]["params"] - rows["unet"]["params"] == extra
    assert rows["unet_max_unpool"]["params"] == rows["unet_bilinear"]["params"]


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
