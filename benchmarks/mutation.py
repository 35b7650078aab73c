"""Mutation testing by hand: do the tests fail when the code is wrong?

A catalogue of realistic one-line bugs ("mutants") in the core modules, each
with the few test files that should catch it. For each mutant the package,
tests and `pyproject.toml` are copied to a temporary folder, the mutant is
applied there (the original text must occur exactly once in its file, so the
catalogue stays in step with the code), and the covering tests run from that
folder with `python -m pytest -x -q -p no:cacheprovider`. A mutant whose
tests fail is killed; one whose tests pass survived, and a test is missing.

Why not mutmut: it mutates every operator it finds and runs one test command
per mutant, from the source tree. This suite runs once per backend
(TensorFlow, JAX, PyTorch: one pytest process each) and takes the better part
of an hour on CPU, so thousands of automatic mutants times the whole suite
does not fit; a hand-written table of bugs that people actually make, each
with its covering tests, runs in minutes.

The copy shadows the installed package: pytest runs with the copy as its
working directory and rootdir (`pythonpath = ["."]` in `pyproject.toml`) and
with `PYTHONPATH` set to it, ahead of the editable install's finder. Before
the first mutant, a child process started the same way must import
`keras_cvlec` from the copy.

Usage (not part of CI; the catalogue's consistency is checked by
`tests/test_benchmarks.py`):

    .venv/bin/python benchmarks/mutation.py                 # every mutant
    .venv/bin/python benchmarks/mutation.py --only unet-skip-order verify-mean
    .venv/bin/python benchmarks/mutation.py --list
    .venv/bin/python benchmarks/mutation.py --backend jax --baseline

`--baseline` first runs each mutant's tests on the unmutated copy (they must
pass, or a kill means nothing). Exits non-zero when a mutant survives or a
test run errs (no tests collected, bad usage).
"""

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a copy holds: the package, the tests and what they read.
COPIED = ("keras_cvlec", "tests", "benchmarks", "examples", "pyproject.toml", "README.md")
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
TIMEOUT = 900  # seconds per test run; a run that hangs counts as killed


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One bug: `original` (exactly once in `path`) becomes `replacement`.

    `tests` are pytest paths (node ids allowed) relative to the repository,
    `select` an optional `-k` expression.
    """

    id: str
    path: str
    original: str
    replacement: str
    tests: tuple
    select: str = None


M = Mutant
UNPOOLING = "keras_cvlec/layers/unpooling.py"
RECIPES = "keras_cvlec/training/recipes.py"
OPTIMIZER = "keras_cvlec/training/optimizer.py"

MUTANTS = (
    # -- layers ---------------------------------------------------------------
    M(
        "unpool-cf-upsample-width",
        UNPOOLING,
        "x = ops.broadcast_to(x, [batch, channels, height, fh, width])",
        "x = ops.broadcast_to(x, [batch, channels, height, fw, width])",
        ("tests/layers/test_unpooling.py",),
        "non_square",
    ),
    M(
        "unpool-ties-last",
        UNPOOLING,
        "better = ops.greater(values, best)",
        "better = ops.greater_equal(values, best)",
        ("tests/layers/test_unpooling.py",),
        "tie_rule or all_equal",
    ),
    M(
        "unpool-index-without-channels",
        UNPOOLING,
        "return pixel[:, :, None] * channels + chans[None, None, :]",
        "return pixel[:, :, None] + chans[None, None, :]",
        ("tests/layers/test_unpooling.py",),
        "test_pool_matches_tf_max_pool_with_argmax",
    ),
    M(
        "unpool-same-padding-before",
        UNPOOLING,
        "return output, total // 2, total - total // 2",
        "return output, total - total // 2, total // 2",
        ("tests/layers/test_unpooling.py",),
        "test_pool_matches_tf_max_pool_with_argmax",
    ),
    M(
        "stochastic-depth-no-rescale",
        "keras_cvlec/layers/stochastic_depth.py",
        "return inputs * (keep_mask / ops.cast(keep_prob, inputs.dtype))",
        "return inputs * keep_mask",
        ("tests/layers/test_stochastic_depth.py",),
    ),
    M(
        "stochastic-depth-drops-at-inference",
        "keras_cvlec/layers/stochastic_depth.py",
        "if not training or self.rate == 0.0:",
        "if self.rate == 0.0:",
        ("tests/layers/test_stochastic_depth.py",),
    ),
    M(
        "layer-scale-adds",
        "keras_cvlec/layers/layer_scale.py",
        "return inputs * gamma",
        "return inputs + gamma",
        ("tests/layers/test_layer_scale.py",),
    ),
    M(
        "channel-norm-cf-wrong-axis",
        "keras_cvlec/layers/channel_layer_normalization.py",
        "mean, variance = ops.moments(x, axes=[1], keepdims=True)",
        "mean, variance = ops.moments(x, axes=[-1], keepdims=True)",
        ("tests/layers/test_convnext_block.py",),
        "channel_layer_norm",
    ),
    M(
        "pad-to-multiple-pads-before",
        "keras_cvlec/layers/pad_to_multiple.py",
        "pad_width[axis][1] = (-shape[axis]) % self.multiple",
        "pad_width[axis][0] = (-shape[axis]) % self.multiple",
        ("tests/test_properties.py",),
        "pad_to_multiple",
    ),
    M(
        "conv-cf-bias-on-last-axis",
        "keras_cvlec/layers/convolution.py",
        "bias_shape[channel_axis(self.data_format)] = -1",
        "bias_shape[-1] = -1",
        ("tests/layers/test_convolution.py",),
    ),
    M(
        "resnet-block-relu-before-add",
        "keras_cvlec/layers/resnet_blocks.py",
        "if index < last_index:",
        "if index <= last_index:",
        ("tests/layers/test_resnet_blocks.py",),
        "torch",
    ),
    M(
        "convnext-block-no-residual",
        "keras_cvlec/layers/convnext_block.py",
        "return inputs + self.drop_path(x, training=training)",
        "return self.drop_path(x, training=training)",
        ("tests/layers/test_convnext_block.py",),
        "numpy_formula",
    ),
    # -- losses ---------------------------------------------------------------
    M(
        "ce-smoothing-keeps-full-target",
        "keras_cvlec/losses.py",
        "loss = (1.0 - label_smoothing) * loss - label_smoothing * ops.mean(",
        "loss = loss - label_smoothing * ops.mean(",
        ("tests/test_losses.py",),
        "crossentropy",
    ),
    M(
        "ce-ignore-counts-void",
        "keras_cvlec/losses.py",
        "valid = valid * ops.divide_no_nan(count, ops.sum(valid))",
        "valid = valid * ops.divide_no_nan(count, count)",
        ("tests/test_losses.py",),
        "ignore",
    ),
    M(
        "dice-without-factor-two",
        "keras_cvlec/losses.py",
        "dice = (2.0 * intersection + smooth) / (total + smooth)",
        "dice = (intersection + smooth) / (total + smooth)",
        ("tests/test_losses.py",),
        "dice",
    ),
    M(
        "dice-binary-channels-swapped",
        "keras_cvlec/losses.py",
        "return ops.concatenate([1.0 - foreground, foreground], axis=axis)",
        "return ops.concatenate([foreground, 1.0 - foreground], axis=axis)",
        ("tests/test_losses.py",),
        "binary",
    ),
    M(
        "labels-upper-bound-inclusive",
        "keras_cvlec/losses.py",
        "valid = (labels >= 0) & (labels < num_classes)",
        "valid = (labels >= 0) & (labels <= num_classes)",
        ("tests/test_losses.py",),
        "check_labels or bad_label_values",
    ),
    # -- metrics --------------------------------------------------------------
    M(
        "iou-union-double-counts",
        "keras_cvlec/metrics.py",
        "true_positives, true_count + predicted_count - true_positives",
        "true_positives, true_count + predicted_count",
        ("tests/test_metrics.py",),
        "match_numpy",
    ),
    M(
        "iou-absent-classes-count",
        "keras_cvlec/metrics.py",
        'present = ops.cast(true_count + predicted_count > 0, "float32")',
        "present = ops.ones_like(true_count)",
        ("tests/test_metrics.py",),
        "absent",
    ),
    M(
        "binary-threshold-swapped",
        "keras_cvlec/metrics.py",
        "threshold = 0.0 if from_logits else 0.5",
        "threshold = 0.5 if from_logits else 0.0",
        ("tests/test_metrics.py",),
        "binary",
    ),
    M(
        "dice-metric-without-factor-two",
        "keras_cvlec/metrics.py",
        "return ops.divide_no_nan(2.0 * true_positives, true_count + predicted_count)",
        "return ops.divide_no_nan(true_positives, true_count + predicted_count)",
        ("tests/test_metrics.py",),
        "match_numpy",
    ),
    M(
        "accuracy-counts-void",
        "keras_cvlec/metrics.py",
        'weight = ops.cast(counted, "float32")',
        'weight = ops.ones_like(ops.cast(counted, "float32"))',
        ("tests/test_metrics.py",),
        "accuracy_leaves_out_void",
    ),
    # -- models ---------------------------------------------------------------
    M(
        "unet-skip-order",
        "keras_cvlec/models/unet.py",
        "[skip, x]",
        "[x, skip]",
        ("tests/models/test_unet.py",),
        "concatenates",
    ),
    M(
        "unet-backbone-skip-strides",
        "keras_cvlec/models/unet.py",
        "skip_strides = list(strides[:-1])",
        "skip_strides = list(strides[1:])",
        ("tests/models/test_unet.py",),
        "backbone_skip or concatenates_the_backbone",
    ),
    M(
        "resnet-uniform-drop-path",
        "keras_cvlec/models/resnet.py",
        "drop_path_rate=drop_path_rate * block_number / max(total_blocks - 1, 1),",
        "drop_path_rate=drop_path_rate,",
        ("tests/models/test_resnet.py",),
        "drop_path_rate_grows",
    ),
    M(
        "convnext-drop-path-off-by-one",
        "keras_cvlec/models/convnext.py",
        "drop_path_rate=drop_path_rate * block_number / max(total_blocks - 1, 1),",
        "drop_path_rate=drop_path_rate * block_number / total_blocks,",
        ("tests/models/test_convnext.py",),
        "drop_path_rates_grow",
    ),
    # -- recipes and optimizer ------------------------------------------------
    M(
        "run-optimizer-unscaled-lr",
        RECIPES,
        "learning_rate=self.learning_rate,",
        "learning_rate=self.recipe.base_learning_rate,",
        ("tests/training/test_optimizer.py",),
        "peaks_at",
    ),
    M(
        "fourth-root-is-sqrt",
        RECIPES,
        '"fourth_root": 0.25,',
        '"fourth_root": 0.5,',
        ("tests/training/test_optimizer.py",),
        "recipes or peaks_at",
    ),
    M(
        "default-scaling-fourth-root",
        RECIPES,
        'learning_rate_scaling: str = "constant"',
        'learning_rate_scaling: str = "fourth_root"',
        ("tests/training/test_optimizer.py",),
        "recipes or resolve_recipe",
    ),
    M(
        "warmup-not-capped-to-half",
        RECIPES,
        "total_updates // 2,",
        "total_updates,",
        ("tests/training/test_optimizer.py",),
        "resolve_recipe or warmup",
    ),
    M(
        "norm-momentum-no-floor",
        RECIPES,
        "return round(min(0.99, max(0.9, 1.0 - 10.0 / steps_per_epoch)), 4)",
        "return round(min(0.99, 1.0 - 10.0 / steps_per_epoch), 4)",
        ("tests/training/test_optimizer.py",),
        "norm_momentum",
    ),
    M(
        "decay-excludes-kernels",
        OPTIMIZER,
        "return [v for v in model.trainable_variables if len(v.shape) <= 1]",
        "return [v for v in model.trainable_variables if len(v.shape) <= 2]",
        ("tests/training/test_optimizer.py",),
        "exclusions or decays_only",
    ),
    M(
        "cosine-decay-ignores-warmup",
        OPTIMIZER,
        "decay_steps=total_steps - warmup_steps,",
        "decay_steps=total_steps,",
        ("tests/training/test_optimizer.py",),
        "schedule_values",
    ),
    # -- data augmentation ----------------------------------------------------
    M(
        "mask-rotated-bilinear",
        "keras_cvlec/data/augmentation.py",
        "return super().transform_segmentation_masks(",
        "return super().transform_images(",
        ("tests/data/test_augmentation.py",),
        "rotat",
    ),
    M(
        "augmentation-layers-share-a-seed",
        "keras_cvlec/data/augmentation.py",
        "seed=None if seed is None else (seed + index) % (MAX_SEED + 1),",
        "seed=seed,",
        ("tests/data/test_augmentation.py",),
        "rand_augment_configuration",
    ),
    # -- export verification --------------------------------------------------
    M(
        "verify-mean-difference",
        "keras_cvlec/export/verify.py",
        "per_output.append((float(np.max(np.abs(got - want))), agreement))",
        "per_output.append((float(np.mean(np.abs(got - want))), agreement))",
        ("tests/test_export_errors.py",),
        "verification or one_wrong",
    ),
    M(
        "verify-best-output-agreement",
        "keras_cvlec/export/verify.py",
        "agreement = min(a for _, a in per_output)",
        "agreement = max(a for _, a in per_output)",
        ("tests/test_export_errors.py",),
        "verification",
    ),
    M(
        "verify-first-output-only",
        "keras_cvlec/export/verify.py",
        "diff = max(d for d, _ in per_output)",
        "diff = per_output[0][0]",
        ("tests/test_export_errors.py",),
        "verification",
    ),
    # -- the MAC counter ------------------------------------------------------
    M(
        "flops-dense-last-axis-only",
        "keras_cvlec/utils/flops.py",
        "return math.prod(call.input_shape) * layer.units",
        "return call.input_shape[-1] * layer.units",
        ("tests/utils/test_flops.py",),
        "other_layers",
    ),
    M(
        "flops-conv-counts-filters-twice",
        "keras_cvlec/utils/flops.py",
        "return math.prod(call.output_shape) * math.prod(layer.kernel.shape[:-1])",
        "return math.prod(call.output_shape) * math.prod(layer.kernel.shape)",
        ("tests/utils/test_flops.py",),
        "single_spatial",
    ),
    M(
        "flops-transpose-by-output",
        "keras_cvlec/utils/flops.py",
        "math.prod(call.input_shape) * math.prod(layer.kernel_size) * layer.filters",
        "math.prod(call.output_shape) * math.prod(layer.kernel_size) * layer.filters",
        ("tests/utils/test_flops.py",),
        "single_spatial",
    ),
    M(
        "flops-depthwise-times-channels",
        "keras_cvlec/utils/flops.py",
        "return math.prod(call.output_shape) * math.prod(layer.kernel_size)",
        "return math.prod(call.output_shape) * math.prod(layer.kernel.shape)",
        ("tests/utils/test_flops.py",),
        "single_spatial",
    ),
)


def module_of(mutant):
    """The part of the package a mutant is in, for the table."""
    parts = mutant.path.split("/")
    return parts[1] if len(parts) > 2 else os.path.splitext(parts[1])[0]


def check_in_step(mutant, root=ROOT):
    """Raises ValueError unless `original` occurs exactly once in the file."""
    with open(os.path.join(root, mutant.path), encoding="utf-8") as file:
        count = file.read().count(mutant.original)
    if count != 1:
        raise ValueError(
            f"mutant {mutant.id!r}: its original text occurs {count} times in "
            f"{mutant.path} (must be once; update the catalogue): {mutant.original!r}"
        )


def copy_repository(destination):
    for name in COPIED:
        source = os.path.join(ROOT, name)
        target = os.path.join(destination, name)
        if os.path.isdir(source):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(source):
            shutil.copy2(source, target)


def apply(mutant, root):
    check_in_step(mutant, root)
    path = os.path.join(root, mutant.path)
    with open(path, encoding="utf-8") as file:
        text = file.read()
    with open(path, "w", encoding="utf-8") as file:
        file.write(text.replace(mutant.original, mutant.replacement, 1))


def environment(root, backend):
    return dict(
        os.environ,
        KERAS_BACKEND=backend,
        PYTHONPATH=root,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONHASHSEED="0",
    )


def check_shadowing(root, backend):
    """A child started like the test runs imports `keras_cvlec` from `root`."""
    found = subprocess.run(
        [PYTHON, "-c", "import keras_cvlec; print(keras_cvlec.__file__)"],
        cwd=root,
        env=environment(root, backend),
        capture_output=True,
        text=True,
    ).stdout.strip()
    expected = os.path.join(os.path.realpath(root), "keras_cvlec", "__init__.py")
    if os.path.realpath(found) != expected:
        raise RuntimeError(f"the copy is not what gets imported: keras_cvlec from {found!r}")


def run_tests(mutant, root, backend):
    """(status, seconds, last lines of output) of the covering tests in `root`."""
    command = [PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
    if mutant.select:
        command += ["-k", mutant.select]
    start = time.monotonic()
    try:
        result = subprocess.run(
            command,
            cwd=root,
            env=environment(root, backend),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    seconds = time.monotonic() - start
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
    # pytest: 0 all passed, 1 tests failed, 2 interrupted (e.g. a collection
    # error: the mutant broke an import); 3-5 internal/usage error, no tests.
    status = {0: "passed", 1: "failed", 2: "failed"}.get(result.returncode, "error")
    return status, seconds, tail


def run_mutant(mutant, backend, baseline):
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.id}-") as root:
        copy_repository(root)
        check_shadowing(root, backend)
        if baseline:
            status, seconds, tail = run_tests(mutant, root, backend)
            if status != "passed":
                return "baseline " + status, seconds, tail
        apply(mutant, root)
        status, seconds, tail = run_tests(mutant, root, backend)
    verdict = {"passed": "SURVIVED", "failed": "killed", "timeout": "killed (timeout)"}
    return verdict.get(status, status), seconds, tail


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax", "torch"))
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first check that each mutant's tests pass unmutated",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for mutant in MUTANTS:
        check_in_step(mutant)
    ids = [mutant.id for mutant in MUTANTS]
    if len(set(ids)) != len(ids):
        raise ValueError("mutant ids must be unique")
    if args.list:
        for mutant in MUTANTS:
            select = f" -k {mutant.select!r}" if mutant.select else ""
            print(f"{mutant.id:<36} {mutant.path}: {' '.join(mutant.tests)}{select}")
        return 0
    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - set(ids))
        if unknown:
            raise SystemExit(f"unknown mutant ids: {', '.join(unknown)} (see --list)")
        chosen = [mutant for mutant in MUTANTS if mutant.id in args.only]
    rows, start = [], time.monotonic()
    for mutant in chosen:
        verdict, seconds, tail = run_mutant(mutant, args.backend, args.baseline)
        rows.append((mutant, verdict, seconds))
        print(f"{mutant.id:<36} {module_of(mutant):<12} {verdict:<18} {seconds:6.1f}s", flush=True)
        if not verdict.startswith("killed"):
            print("    " + tail.replace("\n", "\n    "), flush=True)
    killed = [m for m, verdict, _ in rows if verdict.startswith("killed")]
    survived = [m.id for m, verdict, _ in rows if verdict == "SURVIVED"]
    errors = [
        m.id for m, verdict, _ in rows if not verdict.startswith("killed") and verdict != "SURVIVED"
    ]
    print(
        f"\n{len(killed)}/{len(rows)} mutants killed ({100 * len(killed) / len(rows):.0f} %) "
        f"on {args.backend}, {(time.monotonic() - start) / 60:.1f} min"
    )
    if survived:
        print("survived: " + ", ".join(survived))
    if errors:
        print("errors (no verdict): " + ", ".join(errors))
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main())
