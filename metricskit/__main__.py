"""``python -m metricskit demo``: a small jitted training loop that logs with a MetricStore."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metricskit.demo import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m metricskit")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small classifier on synthetic data")
    demo.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--log-every", type=int, default=50, help="steps between logs")
    args = parser.parse_args(argv)
    run_demo(steps=args.steps, seed=args.seed, log_every=args.log_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
