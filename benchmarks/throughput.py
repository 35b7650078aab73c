"""Training throughput of our models against keras.applications and plain
PyTorch, in one process per backend.

Usage:

    python benchmarks/throughput.py                       # 128², batch 16
    python benchmarks/throughput.py --tiny                # seconds (CI)
    python benchmarks/throughput.py --backends torch --jit-compile --channels-last

For each installed backend (a process each, `KERAS_BACKEND` set) and each
model, the candidates are trained with `train_on_batch` on random data, in
turn, `--rounds` times `--steps` steps each, and the median images/s is
reported with `ours ÷ this` and the fraction of the FLOP/s of a float32
2048² matmul timed in turn with them (MACs x 2 x 3 x images/s ÷ matmul
FLOP/s; the median of the rounds, so that a loaded machine slows both):

- ResNet-50: ours, keras.applications.ResNet50 (weights=None) and, on torch,
  the same network (v1, convolutions with biases) in plain PyTorch, NCHW and
  channels_last memory formats;
- ConvNeXt-T: ours, keras.applications.ConvNeXtTiny (weights=None);
- U-Net: ours (keras.applications has none).

Keras models compile with `jit_compile="auto"` (TF: graph, JAX: XLA, torch:
eager) unless `--jit-compile`.
"""

import argparse
import json
import os
import statistics
import sys

import timing

SCRIPT = os.path.abspath(__file__)

# keras.applications counterparts of timing.MODELS.
APPLICATIONS = {"resnet50": "ResNet50", "convnext_tiny": "ConvNeXtTiny"}
# The stages of a v1 ResNet-50: (bottleneck width, blocks).
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="32² images, batch 2, one step")
    parser.add_argument("--backends", nargs="+", choices=timing.BACKENDS, default=None)
    parser.add_argument("--models", nargs="+", choices=tuple(timing.MODELS), default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps a round (default 5)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps of each first (default 5)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default 16")
    parser.add_argument("--image-size", type=int, default=None, help="default 128")
    parser.add_argument(
        "--jit-compile", action="store_true", help="compile Keras models with XLA / torch.compile"
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="torch: channels_last memory format for Keras models too",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results to this file")
    parser.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (1, 1, 1, 2, 32) if args.tiny else (5, 3, 5, 16, 128)
    fields = ("steps", "rounds", "warmup", "batch_size", "image_size")
    for field, default in zip(fields, defaults):
        if getattr(args, field) is None:
            setattr(args, field, default)
    return args


def _plain_torch_resnet50(num_classes, norm_layer=None):
    """keras.applications' ResNet50, which is our v1, in plain PyTorch: the
    stride on the first 1x1 convolution of a block, convolutions with biases
    (torchvision's resnet50 is v1.5: the stride on the 3x3, no biases).
    `norm_layer(channels)` makes the normalisations (default
    `nn.BatchNorm2d`)."""
    from torch import nn

    norm_layer = norm_layer or nn.BatchNorm2d

    def conv_bn(cin, cout, kernel, stride=1):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2), norm_layer(cout)]

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            self.body = nn.Sequential(
                *conv_bn(cin, width, 1, stride),
                nn.ReLU(),
                *conv_bn(width, width, 3),
                nn.ReLU(),
                *conv_bn(width, 4 * width, 1),
            )
            changes = stride != 1 or cin != 4 * width
            self.shortcut = (
                nn.Sequential(*conv_bn(cin, 4 * width, 1, stride)) if changes else nn.Identity()
            )

        def forward(self, x):
            return (self.body(x) + self.shortcut(x)).relu()

    layers = [*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (width, blocks) in enumerate(RESNET50_STAGES):
        for block in range(blocks):
            layers.append(Bottleneck(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = 4 * width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers), "plain PyTorch ResNet-50"


def _torch_step(model, x, y, channels_last):
    """A training step of a plain PyTorch model (SGD 0.01, momentum 0.9, as the
    Keras models)."""
    import torch

    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(memory_format=memory_format)
    y = torch.from_numpy(y)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()

    return step


def _keras_step(model, x, y, args):
    import keras

    import keras_cvlec

    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras_cvlec.losses.SparseCategoricalCrossentropy(),
        jit_compile=True if args.jit_compile else "auto",
    )
    if args.channels_last and keras.backend.backend() == "torch":
        import torch

        model.to(memory_format=torch.channels_last)
    return lambda: model.train_on_batch(x, y)


def candidates(name, args):
    """`[(implementation, step, MACs an image)]` for model `name` on the
    current backend, ours first. Every candidate is the same architecture, so
    each is given our model's MAC count."""
    import keras

    from keras_cvlec.utils import count_macs

    ours, make_batch = timing.build_model(name, args.image_size)
    x, y = make_batch(args.batch_size)
    macs = count_macs(ours)
    found = [("ours", _keras_step(ours, x, y, args), macs)]
    if name in APPLICATIONS:
        application = getattr(keras.applications, APPLICATIONS[name])(
            weights=None, input_shape=(args.image_size, args.image_size, 3), classes=1000
        )
        found.append(
            (
                f"keras.applications.{APPLICATIONS[name]}",
                _keras_step(application, x, y, args),
                macs,
            )
        )
    if name == "resnet50" and keras.backend.backend() == "torch":
        for channels_last in (False, True):
            model, label = _plain_torch_resnet50(1000)
            label += ", channels_last" if channels_last else ", NCHW"
            found.append((label, _torch_step(model, x, y, channels_last), macs))
    return found


def make_rows(backend, name, macs, seconds, images, matmul):
    """The table rows of model `name`: `macs` and `seconds` map each
    implementation (ours first) to its MACs an image and its timed rounds of
    `images` images each; `matmul` is the FLOP/s of the reference matmul,
    timed in turn with them."""
    rows = []
    for label, times in seconds.items():
        speed = images / statistics.median(times)
        ours_speed = rows[0]["images_per_second"] if rows else speed
        rows.append(
            {
                "backend": backend,
                "model": name,
                "implementation": label,
                "images_per_second": speed,
                "ours_over_this": ours_speed / speed,
                "macs_per_image": macs[label],
                "matmul_flops_per_second": matmul,
                "matmul_fraction": macs[label] * 2 * 3 * speed / matmul,
            }
        )
    return rows


def run_backend(args):
    """Every model's candidates, alternating within a model; returns the rows."""
    import keras

    matmul, flops = timing.matmul_step(256 if args.tiny else 2048)
    rows = []
    for name in args.models or tuple(timing.MODELS):
        found = candidates(name, args)
        steps = {label: step for label, step, _ in found}
        seconds = timing.alternate(
            {**steps, "matmul": matmul}, args.steps, args.rounds, args.warmup
        )
        matmul_seconds = statistics.median(seconds.pop("matmul")) / args.steps
        rows += make_rows(
            keras.backend.backend(),
            name,
            {label: macs for label, _, macs in found},
            seconds,
            args.batch_size * args.steps,
            flops / matmul_seconds,
        )
    return {"device": timing.device_name(), "rows": rows}


def format_table(results):
    lines = [
        "| backend | model | implementation | images/s | ours ÷ this | of matmul FLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['backend']} | failed ({result['error']}) |||||")
        for row in result.get("rows", []):
            lines.append(
                f"| {row['backend']} | {row['model']} | {row['implementation']} "
                f"| {row['images_per_second']:.1f} | {row['ours_over_this']:.2f} "
                f"| {100 * row['matmul_fraction']:.0f} % |"
            )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker_json:
        with open(args.worker_json, "w") as file:
            json.dump(run_backend(args), file)
        return 0
    passed = [
        f"--{name.replace('_', '-')}={getattr(args, name)}"
        for name in ("steps", "rounds", "warmup", "batch_size", "image_size")
    ]
    passed += [
        f"--{flag}"
        for flag in ("tiny", "jit-compile", "channels-last")
        if getattr(args, flag.replace("-", "_"))
    ]
    if args.models:
        passed += ["--models", *args.models]
    results = [
        dict(timing.run_worker(SCRIPT, backend, passed), backend=backend)
        for backend in args.backends or timing.installed_backends()
    ]
    print(
        f"\nTrain, {args.image_size}² images, batch {args.batch_size}, {args.rounds} rounds of {args.steps} steps"
    )
    for result in results:
        if "device" in result:
            matmul = [row["matmul_flops_per_second"] / 1e9 for row in result["rows"]]
            print(
                f"{result['backend']}: {result['device']}, float32 matmul "
                f"{min(matmul):.0f}-{max(matmul):.0f} GFLOP/s"
            )
    print()
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"results": results}, file, indent=2)
    return 1 if any("error" in result for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
