"""benchmarks/generated_data.py writes the data sets it declares, the same
bytes for the same seed; benchmarks/defaults.py turns its runs into a table
and JSON with a row per data set."""

import hashlib
import json
import os
import sys

import keras
import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
import defaults  # noqa: E402
import generated_data  # noqa: E402
from generated_data import DATASETS, GROUPS, VOID, write_dataset  # noqa: E402

pytestmark = pytest.mark.backend_independent

# Images a split in these tests: enough for every class of every data set
# (20 polygon classes) to occur in each split.
FEW = 24


def _digests(folder):
    """`{relative path: sha256}` of every file under `folder`."""
    digests = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(file.read()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Every data set, `FEW` images a split."""
    root = tmp_path_factory.mktemp("generated")
    for name in DATASETS:
        write_dataset(name, root / name, max_images=FEW)
    return root


def test_same_seed_same_bytes(written, tmp_path):
    for name in DATASETS:
        write_dataset(name, tmp_path / "again" / name, max_images=FEW)
        assert _digests(tmp_path / "again" / name) == _digests(written / name), name
        # A smaller data set is the first images of the larger one.
        write_dataset(name, tmp_path / "small" / name, max_images=3)
        small = _digests(tmp_path / "small" / name)
        assert len(small) > 0 and small.items() <= _digests(written / name).items(), name
        write_dataset(name, tmp_path / "seed1" / name, max_images=3, seed=1)
        other = _digests(tmp_path / "seed1" / name)
        assert other.keys() == small.keys() and all(other[k] != small[k] for k in small), name


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_counts_classes_sizes_and_mask_values(written, name):
    dataset = DATASETS[name]
    extension = {"png": ".png", "jpeg": ".jpg"}[dataset.image_format]
    assert list(dataset.split_sizes)[0] == "train" and "test" in dataset.split_sizes
    for split, count in dataset.split_sizes.items():
        folder = written / name / split
        if dataset.task == "classification":
            assert sorted(os.listdir(folder)) == sorted(dataset.class_names)
            images = [folder / c / f for c in dataset.class_names for f in os.listdir(folder / c)]
        else:
            assert sorted(os.listdir(folder)) == ["images", "masks"]
            images = [folder / "images" / f for f in os.listdir(folder / "images")]
            masks = sorted(os.listdir(folder / "masks"))
            assert masks == sorted(
                f.replace(extension, ".png") for f in os.listdir(folder / "images")
            )
            values = set()
            for mask in masks:
                with Image.open(folder / "masks" / mask) as file:
                    assert file.mode == "L" and file.size == (dataset.image_size,) * 2
                    values |= set(np.unique(np.asarray(file)).tolist())
            # Every class occurs, and nothing else (void only where declared).
            assert values == dataset.mask_values, (split, values)
        assert len(images) == min(count, FEW), split
        for path in images:
            assert str(path).endswith(extension)
            with Image.open(path) as file:
                assert file.mode == "RGB" and file.size == (dataset.image_size,) * 2


def test_full_sizes_span_the_benchmark_brief():
    """round1: both tasks; 32 to 96 pixels; 3 to 20 classes; ~500 to
    ~10,000 training images."""
    datasets = [DATASETS[name] for name in GROUPS["round1"]]
    assert {d.task for d in datasets} == {"classification", "segmentation"}
    assert min(d.image_size for d in datasets) == 32 and max(d.image_size for d in datasets) == 96
    assert min(d.num_classes for d in datasets) == 3 and max(d.num_classes for d in datasets) == 20
    train = [d.split_sizes["train"] for d in datasets]
    assert min(train) <= 600 and max(train) >= 10000


def test_heldout3_sizes_span_its_brief():
    """heldout3: both tasks; 40 to 64 pixels; 2 to 9 classes; 600 to 4,000
    training images."""
    datasets = [DATASETS[name] for name in GROUPS["heldout3"]]
    assert {d.task for d in datasets} == {"classification", "segmentation"}
    assert min(d.image_size for d in datasets) == 40 and max(d.image_size for d in datasets) == 64
    assert min(d.num_classes for d in datasets) == 2 and max(d.num_classes for d in datasets) == 9
    train = [d.split_sizes["train"] for d in datasets]
    assert min(train) == 600 and max(train) == 4000


# heldout2's brief: (task, image sizes, classes, training images) per data set.
HELDOUT2_BRIEF = {
    "leaves": ("classification", range(40, 49), {8}, range(1500, 2501)),
    "fabrics": ("classification", {64}, {4}, range(600, 901)),
    "glyphs": ("classification", {32}, {12}, range(5000, 8001)),
    "fields": ("segmentation", range(64, 97), {4, 5}, range(500, 801)),
    "cracks": ("segmentation", {48}, {2}, range(1000, 2001)),
}


# heldout3's brief, the same way.
HELDOUT3_BRIEF = {
    "gauges": ("classification", range(40, 49), range(6, 11), range(1200, 1801)),
    "vehicles": ("classification", range(32, 57), range(5, 9), range(3000, 5001)),
    "spectrograms": ("classification", {64}, range(3, 13), range(500, 801)),
    "clouds": ("segmentation", {64}, {4}, range(600, 1001)),
    "nuclei": ("segmentation", {48}, {2}, range(1000, 1501)),
}


def test_groups():
    """Every data set in one group; the default is the newest held-out
    group, none of whose data sets (nor their class lists) is one of an
    earlier group's."""
    assert sorted(n for names in GROUPS.values() for n in names) == sorted(DATASETS)
    assert list(GROUPS) == ["round1", "heldout2", "heldout3"]
    assert GROUPS["round1"] == ("textures", "polygons", "cells", "voronoi", "roads")
    assert generated_data.DEFAULT_GROUP == "heldout3"
    for group, brief, earlier in (
        ("heldout2", HELDOUT2_BRIEF, ["round1"]),
        ("heldout3", HELDOUT3_BRIEF, ["round1", "heldout2"]),
    ):
        assert set(GROUPS[group]) == set(brief)
        earlier_names = [n for g in earlier for n in GROUPS[g]]
        earlier_classes = {DATASETS[n].class_names for n in earlier_names}
        earlier_draw = {DATASETS[n].draw for n in earlier_names}
        for name in GROUPS[group]:
            dataset = DATASETS[name]
            assert (
                dataset.class_names not in earlier_classes and dataset.draw not in earlier_draw
            ), name
            task, sizes, classes, train = brief[name]
            assert dataset.task == task and dataset.image_size in sizes, name
            assert dataset.num_classes in classes and dataset.split_sizes["train"] in train, name
            assert dataset.task == "classification" or dataset.image_size % 8 == 0, (
                name
            )  # U-Net depth 3
        layouts = [tuple(DATASETS[n].split_sizes) for n in GROUPS[group]]
        assert ("train", "test") in layouts and ("train", "val", "test") in layouts, group
        assert set(GROUPS[group]) <= set(defaults.EPOCHS), group
    # heldout3 varies image size and class count within the group.
    heldout3 = [DATASETS[n] for n in GROUPS["heldout3"]]
    assert (
        len({d.image_size for d in heldout3}) >= 4 and len({d.num_classes for d in heldout3}) == 5
    )
    # Every group has a data set of each task for --quick.
    for group in GROUPS:
        assert [DATASETS[n].task for n in defaults.quick_datasets(group)] == [
            "classification",
            "segmentation",
        ]
    assert defaults.quick_datasets("round1") == ("textures", "voronoi")
    assert defaults.quick_datasets("heldout3") == ("gauges", "clouds")


def test_heldout2_details(written):
    """fields: void in bands about two pixels wide, a few percent of the
    pixels; cracks: a rare foreground; glyphs: the built-in font scales."""
    fields = written / "fields" / "train" / "masks"
    void = pixels = 0
    for name in os.listdir(fields):
        with Image.open(fields / name) as file:
            mask = np.asarray(file)
        is_void = mask == VOID
        void, pixels = void + is_void.sum(), pixels + mask.size
        # A band: every void pixel has a labelled pixel at most 2 away.
        padded = np.pad(~is_void, 2)
        near = np.zeros(mask.shape, bool)
        for dy in range(5):
            for dx in range(5):
                near |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
        assert near[is_void].all(), name
    assert 0.02 < void / pixels < 0.2
    crack = total = 0
    for name in os.listdir(written / "cracks" / "train" / "masks"):
        with Image.open(written / "cracks" / "train" / "masks" / name) as file:
            mask = np.asarray(file)
        crack, total = crack + (mask == 1).sum(), total + mask.size
    assert 0.003 < crack / total < 0.1
    font = generated_data._font(40)
    assert font.getbbox("A")[3] - font.getbbox("A")[1] > 20  # really 40 pixels, not a bitmap font
    assert set(generated_data.GLYPHS.values()) == {
        "A",
        "F",
        "G",
        "K",
        "M",
        "R",
        "2",
        "4",
        "7",
        "&",
        "?",
        "#",
    }


def test_heldout3_details(written):
    """gauges: the class is the needle's angle folded about the top;
    nuclei: a thin void ring keeps every nucleus pixel off the background;
    clouds: shadows occur."""
    rng = np.random.default_rng(0)
    for label in range(DATASETS["gauges"].num_classes):
        angles = np.array([generated_data.gauge_angle(rng, label) for _ in range(50)])
        assert (np.abs(angles) // generated_data.GAUGE_SECTOR == label).all(), label
        assert (angles < 0).any() and (angles > 0).any(), label  # either side of the top
    masks = written / "nuclei" / "train" / "masks"
    void = pixels = 0
    for name in os.listdir(masks):
        with Image.open(masks / name) as file:
            mask = np.asarray(file)
        assert (mask == 1).any() and (mask == VOID).any(), name
        for first, second in ((mask[1:], mask[:-1]), (mask[:, 1:], mask[:, :-1])):
            assert not ((first == 1) & (second == 0) | (first == 0) & (second == 1)).any(), name
        # A thin ring: every void pixel has a nucleus pixel at most 2 away.
        padded = np.pad(mask == 1, 2)
        near = np.zeros(mask.shape, bool)
        for dy in range(5):
            for dx in range(5):
                near |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
        assert near[mask == VOID].all(), name
        void, pixels = void + (mask == VOID).sum(), pixels + mask.size
    assert 0.02 < void / pixels < 0.2
    shadow = 0
    for name in os.listdir(written / "clouds" / "train" / "masks"):
        with Image.open(written / "clouds" / "train" / "masks" / name) as file:
            shadow += (np.asarray(file) == 3).sum()
    assert shadow > 0


def test_nothing_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset("cells", tmp_path, max_images=1)
    with pytest.raises(SystemExit, match="not an empty folder"):
        defaults.main(["--quick", "--work-dir", str(tmp_path)])
    assert os.listdir(tmp_path) == ["mine.txt"]


# A stand-in for `keras-cvlec train`: writes the metrics.json of a run in
# milliseconds. Validation score 0.7 by default, 0.6 + 50 x the learning rate
# when tuned; test score 0.05 lower; no test split for "cells"; the default
# run of "roads" fails.
FAKE_TRAIN = """\
import json, os, sys
args = sys.argv[2:]
value = lambda flag: args[args.index(flag) + 1] if flag in args else None
dataset = os.path.basename(value("--dataset"))
if dataset == "roads" and value("--learning-rate") is None:
    sys.exit("diverged")
metric = "mean_iou" if "unet" in args else "accuracy"
score = 0.6 + 50 * float(value("--learning-rate")) if value("--learning-rate") else 0.7
score += 0.01 * int(value("--seed"))
os.makedirs(value("--output"))
metrics = {"validation": {metric: score},
           "test": None if dataset == "cells" else {metric: score - 0.05}}
with open(os.path.join(value("--output"), "metrics.json"), "w") as file:
    json.dump(metrics, file)
with open(os.path.join(value("--output"), "run.json"), "w") as file:
    json.dump({"resolved_recipe": {"learning_rate": float(value("--learning-rate") or 0.004)}}, file)
"""


def test_table_and_json_from_runs(tmp_path, monkeypatch, capsys):
    script = tmp_path / "keras-cvlec"
    script.write_text(f"#!{sys.executable}\n{FAKE_TRAIN}")
    script.chmod(0o755)
    monkeypatch.setattr(defaults, "KERAS_CVLEC", str(script))
    output = tmp_path / "results.json"
    code = defaults.main(
        [
            "--quick",
            "--datasets",
            "textures",
            "cells",
            "roads",
            "--work-dir",
            str(tmp_path / "work"),
            "--output-json",
            str(output),
            "--tuned-learning-rates",
            "0.001",
            "0.003",
        ]
    )
    assert code == 1  # a run failed
    results = json.loads(output.read_text())
    rows = {row["dataset"]: row for row in results["rows"]}
    assert list(rows) == ["textures", "cells", "roads"]
    textures, cells, roads = rows.values()
    # The tuned run of the best validation score, its test score reported.
    assert textures["tuned"]["learning_rate"] == 0.003 and len(textures["tuned_runs"]) == 2
    assert textures["tuned"]["score"] == pytest.approx(0.7)
    assert textures["default"]["score"] == pytest.approx(0.65)
    assert textures["difference_points"] == pytest.approx(-5.0)
    assert (
        "--learning-rate 0.003 --recipe-options randaugment_magnitude=0"
        in textures["tuned"]["command"]
    )
    assert "--learning-rate" not in textures["default"]["command"]
    assert textures["layout"] == "train+test" and textures["train_images"] == defaults.QUICK_IMAGES
    assert cells["default"]["split"] == "validation" and cells["default"]["score"] == pytest.approx(
        0.7
    )
    assert roads["default"]["returncode"] == 1 and roads["difference_points"] is None
    assert "--model unet --model-options filters=16 depth=3" in roads["tuned"]["command"]
    assert results["target_missed"] == ["textures", "cells", "roads"]
    printed = capsys.readouterr().out
    assert "diverged" in printed  # the failed run's output
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3
    assert "| -5.0 |" in table[1] and "0.7000 (val)" in table[2] and "failed (exit 1)" in table[3]
    assert "MISSED on textures, cells, roads" in printed
    # Without --tuned-learning-rates: half and twice the default run's rate.
    assert (
        defaults.main(
            [
                "--quick",
                "--datasets",
                "textures",
                "--work-dir",
                str(tmp_path / "work2"),
                "--output-json",
                str(output),
            ]
        )
        == 0
    )  # --quick: no target
    (row,) = json.loads(output.read_text())["rows"]
    assert [run["learning_rate"] for run in row["tuned_runs"]] == [0.002, 0.008]
    assert row["tuned"]["learning_rate"] == 0.008


def test_seeds_are_averaged(tmp_path, monkeypatch, capsys):
    """--seeds 3: every configuration trains with seeds 0, 1, 2 in folders of
    their own, and the means are compared and shown with their spread."""
    script = tmp_path / "keras-cvlec"
    script.write_text(f"#!{sys.executable}\n{FAKE_TRAIN}")
    script.chmod(0o755)
    monkeypatch.setattr(defaults, "KERAS_CVLEC", str(script))
    output = tmp_path / "results.json"
    assert (
        defaults.main(
            [
                "--datasets",
                "textures",
                "--quick",
                "--seeds",
                "3",
                "--work-dir",
                str(tmp_path / "work"),
                "--output-json",
                str(output),
                "--tuned-learning-rates",
                "0.001",
            ]
        )
        == 0
    )
    (row,) = json.loads(output.read_text())["rows"]
    # The fake scores 0.7 + 0.01 * seed (default) on validation, 0.05 less on test.
    assert row["default"]["scores"] == pytest.approx([0.65, 0.66, 0.67])
    assert row["default"]["score"] == pytest.approx(0.66)
    assert row["tuned"]["validation_score"] == pytest.approx(0.66)  # 0.6 + 50 * 0.001 + 0.01
    assert row["difference_points"] == pytest.approx(5.0)  # 0.66 - 0.61
    assert sorted(os.listdir(tmp_path / "work" / "runs")) == sorted(
        f"textures-{kind}-seed{seed}{suffix}"
        for kind in ("default", "tuned-lr0.001")
        for seed in range(3)
        for suffix in ("", ".log")
    )
    assert "| 0.6600 ± 0.0100 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        defaults.main(["--seeds", "0"])


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the real CLI's start-up takes ~12 s a run on TF and more on JAX; the harness is "
    "tested on every backend above",
)
def test_quick_run_with_the_cli(tmp_path):
    """`defaults.py --quick` end to end on the classification data set: its
    two real `keras-cvlec train` runs use every flag the benchmark passes
    (the segmentation runs use a subset)."""
    output = tmp_path / "results.json"
    assert (
        defaults.main(
            [
                "--quick",
                "--datasets",
                "textures",
                "--work-dir",
                str(tmp_path / "work"),
                "--output-json",
                str(output),
                "--tuned-learning-rates",
                "2e-3",
            ]
        )
        == 0
    )
    (row,) = json.loads(output.read_text())["rows"]
    assert row["dataset"] == "textures"
    for run in (row["default"], row["tuned"]):
        assert run["returncode"] == 0 and run["split"] == "test"
        assert 0.0 <= run["score"] <= 1.0 and 0.0 <= run["validation_score"] <= 1.0


def test_mutation_catalogue_is_in_step_with_the_code(tmp_path):
    """benchmarks/mutation.py: every mutant's original text occurs exactly
    once in its file and the mutated file still compiles; its tests exist;
    at least 30 mutants over the core modules."""
    import mutation

    mutants = mutation.MUTANTS
    ids = [mutant.id for mutant in mutants]
    assert len(mutants) >= 30 and len(set(ids)) == len(ids)
    for mutant in mutants:
        mutation.check_in_step(mutant)
        assert mutant.replacement != mutant.original, mutant.id
        for test in mutant.tests:
            assert os.path.isfile(os.path.join(mutation.ROOT, test.split("::")[0])), mutant.id
        copy = tmp_path / mutant.id / mutant.path
        copy.parent.mkdir(parents=True)
        with open(os.path.join(mutation.ROOT, mutant.path), encoding="utf-8") as file:
            copy.write_text(file.read())
        mutation.apply(mutant, str(tmp_path / mutant.id))
        compile(copy.read_text(), mutant.path, "exec")
    paths = [mutant.path for mutant in mutants]
    for part in (
        "layers/",
        "losses.py",
        "metrics.py",
        "models/",
        "training/recipes.py",
        "training/optimizer.py",
        "data/augmentation.py",
        "export/verify.py",
        "utils/flops.py",
    ):
        assert any(path.startswith("keras_cvlec/" + part) for path in paths), part
    # The blind spots of issue 17 stay in the catalogue.
    assert {
        "unpool-cf-upsample-width",
        "run-optimizer-unscaled-lr",
        "unet-skip-order",
        "verify-mean-difference",
        "mask-rotated-bilinear",
    } <= set(ids)
