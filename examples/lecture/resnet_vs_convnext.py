"""Lecture claim 5: ResNet against ConvNeXt.

The lecture: "similar order of parameters ... ConvNeXt outperforms".

Measured:

- (a) parameters (`model.count_params()`; trainable ones too, torchvision's
  convention) and multiply-accumulates of one `--count-size` image
  (`keras_cvlec.utils.count_macs`) of every ResNet (v1.5) and ConvNeXt
  variant with 1000 classes, compared with the published figures at 224x224
  (torchvision's ResNet table; keras.applications' ConvNeXt parameters, the
  ConvNeXt paper's FLOPs): the paper's MACs-vs-parameters picture without
  the accuracies;
- (b) test accuracy against MACs of a tiny ConvNeXt (`convnext_atto`) and a
  ResNet-18 whose width (`filters`) is chosen to match its MACs at
  `--size` pixels, each trained with its own recipe
  (`keras_cvlec.training.recipe_for`, `prepare_training`) on the embedded
  shapes classification data, over `--seeds` seeds (the seed draws the
  data, the weights and the order);
- (c) the recipe's ingredients of the `--ablate` model (the matched
  ResNet-18 by default), removed one at a time over the same seeds:
  AdamW -> Adam (weight decay 0), cosine -> constant learning rate (after
  the same warm-up), label smoothing -> 0, stochastic depth -> 0 and
  augmentation -> none (what the recipe keeps in a run this short: the
  package turns RandAugment, MixUp and CutMix off below 100,000 images
  seen, so it is flips and shifts). The full recipes use stochastic depth
  0.05 for the ResNet (ResNet strikes back A1/A2; the package's A3 has
  none) and 0.1 for the ConvNeXt (ConvNeXt-T's; atto has no published
  rate).

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/resnet_vs_convnext.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/resnet_vs_convnext`):
`resnet_vs_convnext.png` (the three panels) and `resnet_vs_convnext.json`
(the numbers). Exits with status 1 if a check fails.
"""

import math
import os
import sys
import time

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import keras_cvlec  # noqa: E402
from keras_cvlec.models.convnext import CONVNEXT_VARIANTS  # noqa: E402
from keras_cvlec.models.resnet import RESNET_VARIANTS  # noqa: E402
from keras_cvlec.training import make_optimizer, prepare_training  # noqa: E402
from keras_cvlec.utils import count_macs, structure_only  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    claim_parser,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "resnet_vs_convnext"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "count_size": 32,
    "smallest_only": True,
    "size": 32,
    "num_images": 4,
    "batch_size": 2,
    "epochs": 1,
    "seeds": 1,
    "ingredients": "cosine",
    "run_eagerly": True,
}
RESNET_VERSION = "v1.5"
CONVNEXT = "convnext_atto"
RESNET = "resnet18"
# Stochastic depth of the full recipes: ConvNeXt-T's ImageNet-1K rate (the
# recipe has none for atto) and ResNet strikes back A1/A2's (A3, the "resnet"
# recipe, has none).
DROP_PATH_RATES = {CONVNEXT: 0.1, RESNET: 0.05}
# Published figures at 224x224, 1000 classes: parameters (trainable ones for
# torchvision, which does not count batch-norm statistics) and MACs in G
# with the number of decimals printed.
PUBLISHED = {
    "resnet18": (11_689_512, 1.81, 2),
    "resnet34": (21_797_672, 3.66, 2),
    "resnet50": (25_557_032, 4.09, 2),
    "resnet101": (44_549_160, 7.80, 2),
    "resnet152": (60_192_808, 11.51, 2),
    "convnext_tiny": (28_589_128, 4.5, 1),
    "convnext_small": (50_223_688, 8.7, 1),
    "convnext_base": (88_591_464, 15.4, 1),
    "convnext_large": (197_767_336, 34.4, 1),
    "convnext_xlarge": (350_196_968, 60.9, 1),
}
# Each ingredient: its label and the recipe options that remove it (the
# schedule is not a recipe option: "cosine" is removed by `constant_lr`).
INGREDIENTS = {
    "adamw": ("AdamW -> Adam", {"weight_decay": 0.0}),
    "cosine": ("cosine -> constant LR", {}),
    "label_smoothing": ("no label smoothing", {"label_smoothing": 0.0}),
    "stochastic_depth": ("no stochastic depth", {"drop_path_rate": 0.0}),
    "augmentation": ("no augmentation", {"augment": False}),
}


def build_variant(name, size):
    """A 1000-class `name` (a ResNet or `convnext_<variant>`) for `size` px."""
    shape = (size, size, 3)
    if name.startswith("convnext_"):
        return keras_cvlec.build_convnext(name[len("convnext_") :], input_shape=shape)
    return keras_cvlec.build_resnet(name, version=RESNET_VERSION, input_shape=shape)


def count_variants(size, smallest_only):
    """Parameters and MACs of every ResNet and ConvNeXt variant (or the
    smallest of each family) at `size` x `size` pixels. Counting needs no
    weight values: the models are built without drawing them."""
    families = {
        "resnet": list(RESNET_VARIANTS),
        "convnext": [f"convnext_{name}" for name in CONVNEXT_VARIANTS],
    }
    rows = []
    for family, names in families.items():
        for name in names[:1] if smallest_only else names:
            with structure_only():
                model = build_variant(name, size)
            rows.append(
                {
                    "name": name,
                    "family": family,
                    "size": size,
                    "params": int(model.count_params()),
                    "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights),
                    "macs": int(count_macs(model)),
                }
            )
    return rows


def published_checks(rows, size):
    """Each published parameter count (exact) and, at 224x224, MAC count (to
    its printed decimals) against the counted ones."""
    checks = {}
    for row in rows:
        if row["name"] not in PUBLISHED:
            continue
        params, gmacs, decimals = PUBLISHED[row["name"]]
        counted = row["trainable_params"] if row["family"] == "resnet" else row["params"]
        checks[f"{row['name']}_params_match_published"] = counted == params
        if size == 224:
            checks[f"{row['name']}_macs_match_published"] = (
                round(row["macs"] / 1e9, decimals) == gmacs
            )
    return checks


def matched_resnet_filters(size, target_macs, num_classes):
    """ResNet-18's `filters` whose MACs are closest to `target_macs`, and the
    coefficients `(a, b)` of its MACs `a f^2 + b f` (every layer's cost is
    a product of two widths, or of a width and the 3 input channels or the
    classes: a quadratic in f without a constant, fitted at f = 1 and 2)."""
    with structure_only():
        m1, m2 = (
            count_macs(
                keras_cvlec.build_resnet(
                    RESNET,
                    version=RESNET_VERSION,
                    filters=f,
                    num_classes=num_classes,
                    input_shape=(size, size, 3),
                )
            )
            for f in (1, 2)
        )
    a, b = (m2 - 2 * m1) / 2, (4 * m1 - m2) / 2
    root = (-b + math.sqrt(b * b + 4 * a * target_macs)) / (2 * a)
    best = min(
        {max(1, math.floor(root)), math.ceil(root)},
        key=lambda f: abs(a * f * f + b * f - target_macs),
    )
    return best, (a, b)


def train_one(model_name, args, seed, macs, *, remove=None, model_options=None):
    """Trains `model_name` with its recipe (less the ingredient `remove`);
    returns its test accuracy, MACs (counted once a model, kept in the dict
    `macs`) and what the run used."""
    recipe_options = {"drop_path_rate": DROP_PATH_RATES[model_name]}
    recipe_options.update(INGREDIENTS[remove][1] if remove else {})
    # XLA on the TensorFlow CPU backend trains ConvNeXt about 10x slower here
    # than TensorFlow's own kernels (measured: 50 s against 5 s an epoch).
    jit_compile = False if keras.backend.backend() == "tensorflow" else "auto"
    run = prepare_training(
        model_name,
        "shapes",
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.size,
        num_images=args.num_images,
        recipe_options=recipe_options,
        model_options=model_options,
        jit_compile=jit_compile,
        seed=seed,
    )
    if remove == "cosine":
        constant_lr(run, jit_compile)
    # Tracing a TensorFlow graph costs more than a few steps; JAX runs
    # eagerly far slower than it compiles, and torch is eager anyway.
    run.model.run_eagerly = args.run_eagerly and keras.backend.backend() == "tensorflow"
    start = time.perf_counter()
    run.model.fit(run.data["train"], epochs=run.epochs, verbose=0)
    seconds = time.perf_counter() - start
    test = run.data["test"]
    labels = test.targets if test.targets.ndim == 1 else test.targets.argmax(-1)
    logits = np.concatenate(
        [
            keras.ops.convert_to_numpy(run.model(test.images[i : i + 256], training=False))
            for i in range(0, len(test.images), 256)
        ]
    )
    plan = run.plan
    accuracy = float(np.mean(logits.argmax(-1) == labels))
    print(
        f"{model_name} seed {seed}, {INGREDIENTS[remove][0] if remove else 'full recipe'}: "
        f"test accuracy {accuracy:.3f} (trained in {seconds:.0f} s)",
        flush=True,
    )
    return {
        "model": model_name,
        "removed": remove,
        "seed": seed,
        "test_accuracy": accuracy,
        "test_images": len(test.images),
        "macs": macs.setdefault(model_name, int(count_macs(run.model))),
        "params": int(run.model.count_params()),
        "train_seconds": seconds,
        "peak_learning_rate": plan.learning_rate,
        "final_learning_rate": float(keras.ops.convert_to_numpy(run.model.optimizer.learning_rate)),
        "updates": int(keras.ops.convert_to_numpy(run.model.optimizer.iterations)),
        "total_updates": plan.total_updates,
        "warmup_steps": plan.warmup_steps,
        "weight_decay": plan.recipe.weight_decay,
        "label_smoothing": plan.recipe.label_smoothing,
        "drop_path_rate": plan.recipe.drop_path_rate,
        "augmentation": plan.augmentation_text("classification"),
    }


def constant_lr(run, jit_compile):
    """Recompiles `run.model` with the run's AdamW at a constant learning
    rate after the same warm-up (a cosine decay to `alpha=1` of its peak)."""
    plan = run.plan
    optimizer = make_optimizer(
        learning_rate=plan.learning_rate,
        weight_decay=plan.recipe.weight_decay,
        total_steps=plan.total_updates,
        warmup_steps=plan.warmup_steps,
        model=run.model,
        alpha=1.0,
    )
    run.model.compile(optimizer=optimizer, loss=run.model.loss, jit_compile=jit_compile)


def summarize(runs):
    accuracies = [run["test_accuracy"] for run in runs]
    return {
        "mean": float(np.mean(accuracies)),
        "std": float(np.std(accuracies)),
        "min": float(np.min(accuracies)),
        "max": float(np.max(accuracies)),
        "accuracies": accuracies,
    }


def plot(path, rows, matched, ablated, ablation, title):
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.2, 0.8, 1.3]})
    ax = axes[0]
    for family, color, marker in (("resnet", "C0", "o"), ("convnext", "C3", "s")):
        points = [row for row in rows if row["family"] == family]
        ax.scatter(
            [row["params"] / 1e6 for row in points],
            [row["macs"] / 1e9 for row in points],
            color=color,
            marker=marker,
            label="ResNet (v1.5)" if family == "resnet" else "ConvNeXt",
        )
        for row in points:
            label = row["name"].replace("convnext_", "").replace("resnet", "R")
            offset = (5, -11) if family == "resnet" else (-5, 5)
            align = "left" if family == "resnet" else "right"
            ax.annotate(
                label,
                (row["params"] / 1e6, row["macs"] / 1e9),
                xytext=offset,
                textcoords="offset points",
                fontsize=8,
                color=color,
                ha=align,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (millions, count_params)")
    ax.set_ylabel(f"multiply-accumulates per image (G, at {rows[0]['size']} px)")
    ax.set_title("(a) every variant, 1000 classes")
    ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    for entry, color in zip(matched.values(), ("C0", "C3")):
        macs = entry["macs"] / 1e6
        ax.scatter(
            [macs] * len(entry["accuracies"]), entry["accuracies"], color=color, alpha=0.4, s=15
        )
        ax.errorbar(
            macs,
            entry["mean"],
            yerr=entry["std"],
            fmt="o",
            color=color,
            capsize=5,
            markersize=8,
            label=f"{entry['label']}: {entry['mean']:.3f} ± {entry['std']:.3f}",
        )
    ax.axhline(1 / 3, color="gray", linestyle=":", label="chance (3 classes)")
    ax.set_xlabel("multiply-accumulates per image (M)")
    ax.set_ylabel("test accuracy (mean ± std over seeds, dots: seeds)")
    ax.set_title("(b) matched tiny models, own recipes")
    ax.legend(fontsize=8, loc="lower center")
    ax.grid(True, alpha=0.3)

    ax = axes[2]
    labels = ["full recipe"] + [INGREDIENTS[name][0] for name in ablation if name != "full"]
    entries = list(ablation.values())
    x = np.arange(len(entries))
    colors = ["C3" if ablated == CONVNEXT else "C0"] + ["C7"] * (len(entries) - 1)
    ax.bar(
        x,
        [e["mean"] for e in entries],
        yerr=[e["std"] for e in entries],
        color=colors,
        capsize=5,
        alpha=0.8,
    )
    for i, entry in enumerate(entries):
        ax.scatter([i] * len(entry["accuracies"]), entry["accuracies"], color="k", s=10, zorder=3)
        ax.annotate(
            f"{entry['mean']:.3f}",
            (i, entry["mean"] + entry["std"]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.axhline(1 / 3, color="gray", linestyle=":")
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (bar: mean, error: std, dots: seeds)")
    ax.set_title(f"(c) {matched[ablated]['label']}: its recipe, one ingredient removed")
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--count-size", type=int, default=224, help="image size of (a)")
    parser.add_argument(
        "--smallest-only", action="store_true", help="(a): the smallest variant of each family only"
    )
    parser.add_argument("--size", type=int, default=32, help="training image size of (b), (c)")
    parser.add_argument("--num-images", type=int, default=1024, help="images of each split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--ingredients",
        default=",".join(INGREDIENTS),
        help=f"comma-separated ingredients to remove one at a time, of {', '.join(INGREDIENTS)}",
    )
    parser.add_argument(
        "--ablate", choices=(RESNET, CONVNEXT), default=RESNET, help="the model of (c)"
    )
    parser.add_argument(
        "--run-eagerly",
        action="store_true",
        help="TensorFlow backend: train without tracing a graph (faster for a few steps)",
    )
    args = parse_claim_args(parser, argv, QUICK)
    ingredients = [name for name in args.ingredients.split(",") if name]
    unknown = sorted(set(ingredients) - set(INGREDIENTS))
    if unknown:
        parser.error(
            f"--ingredients: unknown {', '.join(unknown)}; allowed: {', '.join(INGREDIENTS)}"
        )
    for name in ("count_size", "size"):
        if getattr(args, name) < 32 or getattr(args, name) % 32:
            parser.error(
                f"--{name.replace('_', '-')} must be a multiple of 32 (the models' stride)."
            )
    png_path, json_path = output_paths(args.out, CLAIM)

    start = time.perf_counter()
    rows = count_variants(args.count_size, args.smallest_only)
    count_seconds = time.perf_counter() - start

    seeds, macs = list(range(args.seeds)), {}
    runs = [train_one(CONVNEXT, args, seed, macs) for seed in seeds]
    filters, (a, b) = matched_resnet_filters(args.size, macs[CONVNEXT], num_classes=3)
    options = {CONVNEXT: None, RESNET: {"filters": filters, "version": RESNET_VERSION}}
    runs += [train_one(RESNET, args, seed, macs, model_options=options[RESNET]) for seed in seeds]
    for name in ingredients:
        runs += [
            train_one(
                args.ablate, args, seed, macs, remove=name, model_options=options[args.ablate]
            )
            for seed in seeds
        ]

    def select(model, removed):
        return [run for run in runs if run["model"] == model and run["removed"] == removed]

    matched = {
        RESNET: {"label": f"ResNet-18, filters {filters}", **summarize(select(RESNET, None))},
        CONVNEXT: {"label": "ConvNeXt-atto", **summarize(select(CONVNEXT, None))},
    }
    for name, entry in matched.items():
        entry["macs"] = select(name, None)[0]["macs"]
        entry["params"] = select(name, None)[0]["params"]
    ablation = {"full": matched[args.ablate]}
    ablation.update({name: summarize(select(args.ablate, name)) for name in ingredients})
    for entry in ablation.values():
        entry["drop_from_full"] = matched[args.ablate]["mean"] - entry["mean"]

    by_removed = {run["removed"]: run for run in runs if run["model"] == args.ablate}
    full = by_removed[None]
    checks = published_checks(rows, args.count_size)
    checks.update(
        {
            "counted_every_variant": len(rows)
            == (2 if args.smallest_only else len(RESNET_VARIANTS) + len(CONVNEXT_VARIANTS)),
            "resnet_macs_quadratic_in_filters": matched[RESNET]["macs"]
            == a * filters**2 + b * filters,
            "matched_macs_within_15_percent": abs(
                matched[RESNET]["macs"] / matched[CONVNEXT]["macs"] - 1
            )
            < 0.15,
            "every_run_made_all_its_updates": all(
                run["updates"] == run["total_updates"] for run in runs
            ),
            "accuracies_in_0_1": all(0.0 <= run["test_accuracy"] <= 1.0 for run in runs),
            "cosine_ends_near_0": full["final_learning_rate"] <= 1e-3 * full["peak_learning_rate"],
        }
    )
    for name, (_, options) in INGREDIENTS.items():
        if name not in by_removed:
            continue
        removed = by_removed[name]
        if name == "cosine":
            ok = math.isclose(
                removed["final_learning_rate"], removed["peak_learning_rate"], rel_tol=1e-5
            )
        elif name == "augmentation":
            ok = removed["augmentation"] == "none" and full["augmentation"] != "none"
        else:
            ((field, value),) = options.items()
            ok = removed[field] == value and full[field] != value
        checks[f"removing_{name}_changes_only_it"] = ok

    results = {
        "backend": keras.backend.backend(),
        "count_size": args.count_size,
        "count_seconds": count_seconds,
        "variants": rows,
        "train": {
            "dataset": "shapes (classification, one shape an image)",
            "size": args.size,
            "num_images_per_split": args.num_images,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "seeds": seeds,
        },
        "resnet_filters": filters,
        "resnet_macs_coefficients": [a, b],
        "matched": matched,
        "ablated_model": args.ablate,
        "ablation": ablation,
        "convnext_minus_resnet_accuracy": matched[CONVNEXT]["mean"] - matched[RESNET]["mean"],
        "runs": runs,
        "checks": checks,
    }
    plot(
        png_path,
        rows,
        matched,
        args.ablate,
        ablation,
        f"ResNet vs ConvNeXt ({results['backend']} backend; training: shapes {args.size} px, "
        f"{args.num_images} images, {args.epochs} epochs, {args.seeds} seeds)",
    )
    write_json(json_path, results)

    for row in rows:
        print(
            f"  {row['name']:16s} {row['params']:>12,d} params "
            f"({row['trainable_params']:>12,d} trainable) {row['macs'] / 1e9:8.3f} GMACs"
        )
    for entry in matched.values():
        print(
            f"{entry['label']:24s} {entry['macs'] / 1e6:7.2f} MMACs  test accuracy "
            f"{entry['mean']:.3f} ± {entry['std']:.3f} (min {entry['min']:.3f}, max {entry['max']:.3f})"
        )
    for name, entry in ablation.items():
        label = "full recipe" if name == "full" else INGREDIENTS[name][0]
        print(f"  {label:24s} {entry['mean']:.3f} ± {entry['std']:.3f}")
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
