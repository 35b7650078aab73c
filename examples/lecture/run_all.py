"""Runs every lecture script in this folder, each in its own process.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/run_all.py [--out DIR] [--quick]

Script `<claim>.py` writes into `DIR/<claim>` (default `lecture_out/<claim>`).
`--quick` runs every script at its tiny CI sizes. Prints every script's wall
time and exits with status 1 if any script fails.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_CLAIMS = {"run_all.py", "lecture_common.py"}


def claim_scripts():
    return sorted(
        name[:-3] for name in os.listdir(HERE) if name.endswith(".py") and name not in NOT_CLAIMS
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="lecture_out")
    parser.add_argument("--quick", action="store_true", help="every script's tiny CI sizes")
    args = parser.parse_args(argv)
    times, failed = {}, []
    for claim in claim_scripts():
        print(f"=== {claim} ===", flush=True)
        command = [
            sys.executable,
            os.path.join(HERE, f"{claim}.py"),
            "--out",
            os.path.join(args.out, claim),
            *(["--quick"] if args.quick else []),
        ]
        start = time.perf_counter()
        if subprocess.run(command).returncode:
            failed.append(claim)
        times[claim] = time.perf_counter() - start
    print("=== wall times ===")
    width = max(map(len, times), default=0)
    for claim, seconds in times.items():
        print(f"{claim:{width}s} {seconds:7.1f} s{'  FAILED' if claim in failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
