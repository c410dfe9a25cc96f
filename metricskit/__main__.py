"""The command line: ``python -m metricskit demo`` and ``python -m metricskit plot``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metricskit.sinks import SINKS


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
    demo.add_argument("--log-every", type=int, default=10, help="steps between logs")
    demo.add_argument("--out-dir", default="runs", help="folder of runs (default runs)")
    demo.add_argument("--name", default="demo", help="the run's name (default demo)")
    demo.add_argument(
        "--sinks", nargs="+", choices=SINKS, default=["jsonl"], help="where logs go (jsonl)"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-plot", action="store_true", help="no curves.png")
    plot = sub.add_parser("plot", help="plot a metrics.jsonl, one panel per metric")
    plot.add_argument("jsonl", help="a metrics.jsonl written by the JSONL sink")
    plot.add_argument("-o", "--output", default="curves.png", help="image file (curves.png)")
    plot.add_argument("--metrics", nargs="+", help="the metrics to plot (default: all)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from metricskit.demo import run_demo

        run_demo(
            steps=args.steps,
            seed=args.seed,
            log_every=args.log_every,
            out_dir=args.out_dir,
            name=args.name,
            sinks=args.sinks,
            progress=not args.no_progress,
            plot=not args.no_plot,
        )
    else:
        from metricskit.plot import plot_jsonl

        names = plot_jsonl(args.jsonl, args.output, args.metrics)
        print(f"wrote {args.output}: {len(names)} panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
