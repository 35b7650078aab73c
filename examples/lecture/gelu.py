"""Lecture claim 6: GELU against ReLU.

The lecture: "GELU behaves similarly to ReLU when the magnitude of the inputs
is large but differently around 0."

Measured on [-4, 4] with the active backend (KERAS_BACKEND):

- exact GELU `keras.activations.gelu(x, approximate=False)` against an
  independent float64 reference `x * Phi(x)`, `Phi` from `math.erf`;
- the tanh approximation (`approximate=True`): its largest absolute error;
- the gap GELU - ReLU for |x| <= 1 and for |x| >= 3, and at |x| = 4;
- the stochastic reading GELU(x) = x * P(Z <= x) = E[x * 1[Z <= x]],
  Z ~ N(0, 1), by Monte Carlo on a grid of x: every estimate must lie within
  4 standard errors `|x| * sqrt(Phi(x) * (1 - Phi(x)) / n)` of x * Phi(x).

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/gelu.py [--out DIR]

Outputs in `--out` (default `lecture_out/gelu`): `gelu.png` (the curves with
the Monte Carlo points, the approximation's error, the gap to ReLU) and
`gelu.json` (the numbers). Exits with status 1 if a check fails.
"""

import math
import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    claim_parser,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "gelu"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {"points": 201, "mc_points": 9, "mc_samples": 20_000}


def phi_cdf(x):
    """Standard normal CDF in float64 from `math.erf` (independent of Keras)."""
    erf = np.vectorize(math.erf)
    return 0.5 * (1.0 + erf(np.asarray(x, "float64") / math.sqrt(2.0)))


def keras_activation(fn, x, **kwargs):
    y = fn(keras.ops.convert_to_tensor(x.astype("float32")), **kwargs)
    return keras.ops.convert_to_numpy(y).astype("float64")


def monte_carlo(points, samples, seed):
    """E[x * 1[Z <= x]] for every x in `points`, Z ~ N(0, 1), and its standard error."""
    rng = np.random.default_rng(seed)
    estimates = np.array([x * np.mean(rng.standard_normal(samples) <= x) for x in points])
    p = phi_cdf(points)
    standard_errors = np.abs(points) * np.sqrt(p * (1.0 - p) / samples)
    return estimates, standard_errors


def plot(path, x, exact, approx, relu, mc_points, mc, mc_se):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(x, relu, label="ReLU", color="gray", linestyle="--")
    ax.plot(x, exact, label="GELU (exact, x Φ(x))", color="C0")
    ax.plot(x, approx, label="GELU (tanh approximation)", color="C1", linestyle=":")
    ax.errorbar(
        mc_points,
        mc,
        yerr=4 * mc_se,
        fmt="o",
        color="C3",
        markersize=4,
        label="Monte Carlo E[x·1[Z≤x]] ± 4 SE",
    )
    ax.set_title("GELU, ReLU and the stochastic reading")
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(x, approx - exact, color="C1")
    ax.set_title("tanh approximation − exact GELU")
    ax.set_xlabel("x")
    ax = axes[2]
    ax.plot(x, exact - relu, color="C0")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_title("GELU − ReLU: large only around 0")
    ax.set_xlabel("x")
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--points", type=int, default=801, help="grid on [-4, 4]")
    parser.add_argument("--mc-points", type=int, default=17)
    parser.add_argument("--mc-samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    png_path, json_path = output_paths(args.out, CLAIM)

    x = np.linspace(-4.0, 4.0, args.points)
    reference = x * phi_cdf(x)
    exact = keras_activation(keras.activations.gelu, x, approximate=False)
    approx = keras_activation(keras.activations.gelu, x, approximate=True)
    relu = keras_activation(keras.activations.relu, x)
    gap = np.abs(exact - relu)
    mc_points = np.linspace(-4.0, 4.0, args.mc_points)
    mc, mc_se = monte_carlo(mc_points, args.mc_samples, args.seed)
    mc_deviation = np.abs(mc - mc_points * phi_cdf(mc_points))

    results = {
        "backend": keras.backend.backend(),
        "points": args.points,
        "keras_exact_vs_erf_reference_max_abs_error": float(np.max(np.abs(exact - reference))),
        "tanh_approximation_max_abs_error": float(np.max(np.abs(approx - reference))),
        "tanh_approximation_argmax_abs_x": float(abs(x[np.argmax(np.abs(approx - reference))])),
        "gelu_relu_max_gap_abs_x_le_1": float(np.max(gap[np.abs(x) <= 1.0])),
        "gelu_relu_max_gap_abs_x_ge_3": float(np.max(gap[np.abs(x) >= 3.0])),
        "gelu_relu_gap_at_abs_x_4": float(max(gap[0], gap[-1])),
        "monte_carlo": {
            "samples_per_point": args.mc_samples,
            "seed": args.seed,
            "x": mc_points.tolist(),
            "estimate": mc.tolist(),
            "standard_error": mc_se.tolist(),
            "max_abs_deviation": float(np.max(mc_deviation)),
            "max_deviation_in_standard_errors": float(
                np.max(np.divide(mc_deviation, mc_se, out=np.zeros_like(mc_se), where=mc_se > 0))
            ),
        },
    }
    results["checks"] = {
        "keras_exact_matches_erf_reference": results["keras_exact_vs_erf_reference_max_abs_error"]
        < 1e-5,
        "tanh_approximation_error_in_0_1e-3": 0.0
        < results["tanh_approximation_max_abs_error"]
        < 1e-3,
        "relu_gap_at_4_below_1e-3": results["gelu_relu_gap_at_abs_x_4"] < 1e-3,
        "relu_gap_larger_near_0_than_beyond_3": results["gelu_relu_max_gap_abs_x_le_1"]
        > 10 * results["gelu_relu_max_gap_abs_x_ge_3"],
        "monte_carlo_within_4_standard_errors": bool(np.all(mc_deviation <= 4 * mc_se)),
    }
    plot(png_path, x, exact, approx, relu, mc_points, mc, mc_se)
    write_json(json_path, results)

    print(
        f"backend {results['backend']}: exact GELU vs erf reference "
        f"{results['keras_exact_vs_erf_reference_max_abs_error']:.1e}, "
        f"tanh approximation max error {results['tanh_approximation_max_abs_error']:.2e} "
        f"(at |x| = {results['tanh_approximation_argmax_abs_x']:.2f})"
    )
    print(
        f"|GELU - ReLU|: max {results['gelu_relu_max_gap_abs_x_le_1']:.3f} for |x| <= 1, "
        f"{results['gelu_relu_max_gap_abs_x_ge_3']:.1e} for |x| >= 3, "
        f"{results['gelu_relu_gap_at_abs_x_4']:.1e} at |x| = 4"
    )
    print(
        f"Monte Carlo ({args.mc_samples} samples a point): max deviation "
        f"{results['monte_carlo']['max_abs_deviation']:.1e} = "
        f"{results['monte_carlo']['max_deviation_in_standard_errors']:.2f} standard errors"
    )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
