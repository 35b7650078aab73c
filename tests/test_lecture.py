"""The lecture scripts in examples/lecture/ run in-process with `--quick`:
their checked numbers hold, they write a PNG and a JSON, and they refuse a
folder holding someone else's files."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

LECTURE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "lecture"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLAIMS = [
    "depthwise",
    "gelu",
    "label_smoothing",
    "pca_autoencoder",
    "per_pixel_vs_unet",
    "residual",
    "residual_branch",
    "resnet_vs_convnext",
    "stochastic_depth",
    "transposed_conv",
    "unet_skips",
    "unpooling",
]


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


def test_pca_autoencoder_errors(tmp_path):
    results = run("pca_autoencoder", tmp_path / "out")
    assert results["ks"] == [4] and results["pixels"] == 16 * 16
    x = load("pca_autoencoder").gray_vectors("train", 64, 16, 0)
    centred = x - x.mean(0)
    # PCA's error from the covariance's eigenvalues (not from an SVD).
    eigenvalues = np.sort(np.linalg.eigvalsh(centred.T @ centred))[::-1]
    (row,) = results["rows"]
    n, d = centred.shape
    assert row["pca_train_mse"] == pytest.approx(eigenvalues[4:].sum() / (n * d), rel=1e-6)
    assert results["total_variance_per_pixel"] == pytest.approx(np.mean(centred**2), rel=1e-9)
    assert 0 < row["pca_train_mse"] < results["total_variance_per_pixel"]
    assert row["linear_autoencoder_train_mse"] >= row["pca_train_mse"] * (1 - 1e-3)
    assert row["relu_autoencoder_train_mse"] > 0


def test_transposed_conv_overlaps_and_checkerboard(tmp_path):
    results = run("transposed_conv", tmp_path / "out")
    small = np.array([[1.0, 2.0], [3.0, 4.0]])
    counts, summed = np.zeros((5, 5)), np.zeros((5, 5))
    for i in range(2):
        for j in range(2):
            counts[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += 1
            summed[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += small[i, j]
    assert np.array_equal(results["overlap_counts"], counts)
    np.testing.assert_allclose(results["output_1234"], summed, atol=1e-5)
    assert results["random_vs_numpy_max_abs_error"] < 1e-4
    amplitude = results["checkerboard_amplitude"]
    # All-ones 3x3 kernel: the inside alternates 4, 2, 2, 1 (mean 2.25).
    assert amplitude["ones_3x3"]["before_filter"] == pytest.approx(3 / 2.25, rel=1e-5)
    assert amplitude["random_3x3"]["before_filter"] > 0.1
    for name in ("ones_3x3", "random_3x3"):
        assert amplitude[name]["after_filter"] < 1e-5
    assert amplitude["ones_4x4"]["before_filter"] < 1e-6
    assert results["image_up_shape"] == [33, 33]
    difference = results["image_neighbour_difference"]
    assert difference["transposed"] > 2 * difference["filtered"]


def test_unpooling_puts_each_maximum_back(tmp_path):
    results = run("unpooling", tmp_path / "out")
    x = np.array(results["input"])
    assert x.shape == (4, 4)
    assert sorted(x.ravel()) == list(range(1, 17))
    pooled, indices = np.zeros((2, 2)), np.zeros((2, 2), int)
    unpooled, nearest = np.zeros((4, 4)), np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            window = x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            dy, dx = divmod(int(window.argmax()), 2)
            pooled[i, j] = window.max()
            indices[i, j] = (2 * i + dy) * 4 + 2 * j + dx
            unpooled[2 * i + dy, 2 * j + dx] = window.max()
            nearest[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = window.mean()
    assert np.array_equal(results["pooled"], pooled)
    assert np.array_equal(results["indices"], indices)
    assert np.array_equal(results["unpooled"], unpooled)
    np.testing.assert_allclose(results["nearest"], nearest, rtol=1e-6)
    assert results["unpooled_zero_fraction"] == 0.75
    mse = results["image_mse"]
    assert mse["dots"]["max-unpooled (zeros)"] < 1e-12
    assert all(value > 0 for value in mse["shapes"].values())


def test_residual_gradients_and_curves(tmp_path):
    results = run("residual", tmp_path / "out")
    w = 4
    # Stem conv, per block batch norm (4 numbers a channel) and 3x3 conv, head
    # batch norm, 3-class Dense, and a block switch weight a block: the skips add nothing.
    params = {
        d: (27 * w + w) + d * (4 * w + 9 * w * w + w + 1) + 4 * w + (3 * w + 3) for d in (1, 2)
    }
    assert [(r["residual"], r["depth"], r["params"]) for r in results["runs"]] == [
        (False, 1, params[1]),
        (False, 2, params[2]),
        (True, 1, params[1]),
        (True, 2, params[2]),
    ]
    assert results["dense_gradient_max_relative_error"] < 1e-3
    for r in results["runs"]:
        assert len(r["gradient_norms"]) == r["depth"]
        assert r["first_over_last_gradient_norm"] == pytest.approx(
            r["gradient_norms"][0] / r["gradient_norms"][-1]
        )
        assert [len(v) for v in r["history"].values()] == [1, 1, 1, 1]


def test_residual_branch_values_and_training(tmp_path):
    results = run("residual_branch", tmp_path / "out")
    w, d = 4, 2
    block = 9 * w * w + w + 4 * w + 1  # 3x3 conv, batch norm, block switch
    base = (27 * w + w) + 4 * w + (3 * w + 3)  # stem, head batch norm, Dense
    relu, conv = results["branches"]["conv_relu"], results["branches"]["conv_relu_conv1x1"]
    assert relu["params"] == base + d * block
    assert conv["params"] == base + d * (block + w * w + w)
    assert results["probe_max_mismatch"] < 1e-4
    for row in (relu, conv):
        for stats in (row["at_init"], row["trained"]):
            blocks = stats["per_block"]
            assert len(blocks) == d
            # Blocks are of one size: the overall fraction is their mean.
            assert stats["fraction_negative"] == pytest.approx(
                np.mean([b["fraction_negative"] for b in blocks])
            )
            assert stats["min"] == min(b["min"] for b in blocks)
            assert stats["max"] == max(b["max"] for b in blocks)
        assert len(row["seeds"]) == 1
        accuracy = row["seeds"][0]["history"]["val_accuracy"][-1]
        assert row["final_test_accuracy"] == {"mean": accuracy, "min": accuracy, "max": accuracy}
    for stats in (relu["at_init"], relu["trained"]):
        assert stats["fraction_negative"] == 0 and stats["min"] >= 0
        assert all(b["min"] >= 0 for b in stats["per_block"])
    assert conv["trained"]["min"] < 0 < conv["trained"]["max"]
    # Every value added: 8 test images, 8x8 positions after the stem, 4 channels, 2 blocks.
    histogram = results["trained_histogram"]
    for name in ("conv_relu", "conv_relu_conv1x1"):
        assert sum(histogram[name]) == 8 * 8 * 8 * w * d
    assert histogram["edges"][0] == conv["trained"]["min"]


def test_stochastic_depth_block_removal(tmp_path):
    results = run("stochastic_depth", tmp_path / "out")
    assert [(r["residual"], r["drop_path_rate"]) for r in results["runs"]] == [
        (True, 0.0),
        (True, 0.2),
        (False, 0.0),
    ]
    for r in results["runs"]:
        accuracies = r["removed_block_accuracy"]
        assert len(accuracies) == 2
        for accuracy in (r["full_accuracy"], *accuracies):
            assert accuracy * 8 == pytest.approx(round(accuracy * 8))  # 8 test images
        assert r["mean_drop"] == pytest.approx(r["full_accuracy"] - np.mean(accuracies))
        assert r["worst_drop"] == pytest.approx(r["full_accuracy"] - min(accuracies))
    assert results["smallest_logit_change_of_a_removal"] > 0


@pytest.mark.parametrize("residual", [True, False])
def test_block_switch_removes_a_block(residual):
    import keras

    module = load("stochastic_depth")
    model = module.toy_cnn(2, residual=residual, width=4, image_size=16)
    probe = keras.Model(
        model.input,
        [model.get_layer(n).output for n in ("stem_conv", "block1_conv", "block1_switch")],
    )
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    module.remove_block(model, 2, None)
    stem, branch, out = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_allclose(out, stem + branch if residual else branch, rtol=1e-6, atol=1e-6)
    module.remove_block(model, 2, 1)
    stem, _, out = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_array_equal(out, stem)


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
