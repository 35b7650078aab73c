"""Train ResNet-50, ConvNeXt-T and a U-Net on the device present, with XLA
and bfloat16, on every installed backend.

Usage:

    python benchmarks/accelerator.py                      # 224², batch 64, 50 steps
    python benchmarks/accelerator.py --tiny               # seconds on a CPU (CI)
    python benchmarks/accelerator.py --backends jax --steps 100 --json out.json
    python benchmarks/accelerator.py --backends torch --no-jit-compile  # eager

Each (backend, model) runs in a process of its own (`KERAS_BACKEND` set), so
that peak memory is the model's own. The model is compiled with
`jit_compile=True` (XLA on TensorFlow and JAX, `torch.compile` on torch;
with `--no-jit-compile`, `"auto"`: a `tf.function` graph on TensorFlow, eager
on torch, XLA on JAX) under the `mixed_bfloat16` dtype policy and trained
with `train_on_batch` on random data. Prints the device, then a table of training images/s, peak
device memory (peak resident set size where the backend cannot tell, e.g. on
CPU) and model FLOP utilisation:

    MFU = MACs (keras_cvlec.utils.count_macs, one image, forward)
          x 2 (FLOPs a MAC) x 3 (forward + backward) x images/s
          / FLOP/s of a large bfloat16 matmul timed in the same process.
"""

import argparse
import json
import os
import sys

import timing

SCRIPT = os.path.abspath(__file__)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="small images, few steps, tiny widths")
    parser.add_argument("--backends", nargs="+", choices=timing.BACKENDS, default=None)
    parser.add_argument("--models", nargs="+", choices=tuple(timing.MODELS), default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50; tiny 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64; tiny 2")
    parser.add_argument("--image-size", type=int, default=None, help="default 224; tiny 32")
    parser.add_argument(
        "--no-jit-compile",
        dest="jit_compile",
        action="store_false",
        help="compile without XLA / torch.compile (torch.compile takes minutes on a CPU)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
    parser.add_argument("--worker-json", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (2, 2, 32) if args.tiny else (50, 64, 224)
    for field, default in zip(("steps", "batch_size", "image_size"), defaults):
        if getattr(args, field) is None:
            setattr(args, field, default)
    return args


def run_model(args):
    """Trains `args.model` on the current backend; returns its result row."""
    import keras

    import keras_cvlec
    from keras_cvlec.utils import count_macs

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model, make_batch = timing.build_model(args.model, args.image_size, tiny=args.tiny)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras_cvlec.losses.SparseCategoricalCrossentropy(),
        jit_compile=True if args.jit_compile else "auto",
    )
    x, y = make_batch(args.batch_size)
    warmup = 1 if args.tiny else 5
    images_per_second = timing.train_images_per_second(model, x, y, args.steps, warmup)
    memory, memory_kind = timing.peak_memory()
    device = timing.device_name()
    size = 256 if args.tiny else (2048 if device.startswith("CPU") else 8192)
    matmul = timing.matmul_flops_per_second(size, "bfloat16")
    macs = count_macs(model)
    return {
        "backend": keras.backend.backend(),
        "model": args.model,
        "variant": model.name,
        "device": device,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "jit_compile": args.jit_compile,
        "images_per_second": images_per_second,
        "peak_memory_bytes": memory,
        "memory_kind": memory_kind,
        "macs_per_image": macs,
        "matmul_size": size,
        "matmul_flops_per_second": matmul,
        "mfu": macs * 2 * 3 * images_per_second / matmul,
    }


def format_table(rows):
    """A Markdown table of the result rows (a failed run keeps its row)."""
    lines = [
        "| backend | model | images/s | peak memory | GMACs/image | matmul TFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['backend']} | {row['model']} | failed ({row['error']}) |||||")
            continue
        memory = f"{row['peak_memory_bytes'] / 2**30:.2f} GiB"
        if row["memory_kind"] != "device":
            memory += f" ({row['memory_kind']})"
        lines.append(
            f"| {row['backend']} | {row['variant']} | {row['images_per_second']:.1f} | {memory} "
            f"| {row['macs_per_image'] / 1e9:.3f} | {row['matmul_flops_per_second'] / 1e12:.3f} "
            f"| {100 * row['mfu']:.1f} % |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker_json:
        with open(args.worker_json, "w") as file:
            json.dump(run_model(args), file)
        return 0
    backends = args.backends or timing.installed_backends()
    models = args.models or tuple(timing.MODELS)
    passed = [
        f"--{name}={value}"
        for name, value in (
            ("steps", args.steps),
            ("batch-size", args.batch_size),
            ("image-size", args.image_size),
        )
    ]
    passed += [
        flag
        for flag, on in (("--tiny", args.tiny), ("--no-jit-compile", not args.jit_compile))
        if on
    ]
    rows = []
    for backend in backends:
        for model in models:
            row = timing.run_worker(SCRIPT, backend, [*passed, f"--model={model}"])
            rows.append(dict(row, model=model))
    devices = sorted({row["device"] for row in rows if "device" in row})
    print(f"\nDevice: {', '.join(devices) or 'unknown'}")
    print(
        f"Train, jit_compile={True if args.jit_compile else 'auto'}, mixed_bfloat16, "
        f"{args.image_size}² images, batch {args.batch_size}, {args.steps} timed steps\n"
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"rows": rows}, file, indent=2)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
