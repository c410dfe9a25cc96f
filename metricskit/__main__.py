"""The command line: ``python -m metricskit demo`` and ``python -m metricskit plot``.

A mistake in the arguments is one line naming the flag and the fix (exit status 2), never a
traceback; ``--help`` shows every default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from metricskit.demo import QUICK, run_demo
from metricskit.plot import plot_jsonl
from metricskit.sinks import SINKS

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of steps, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of steps, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m metricskit", formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        formatter_class=fmt,
        help="train a byte-level language model on the standard library's source",
        description="Train a small byte-level language model on the source of Python's "
        "standard library (read from this interpreter: no download), logging training "
        "metrics, evaluations on held-out text, a summary table, a plot and checkpoints.",
    )
    demo.add_argument("--steps", type=_positive, default=400, help="training steps")
    demo.add_argument("--log-every", type=_positive, default=20, help="steps between logs")
    demo.add_argument("--eval-every", type=_positive, default=100, help="steps between evaluations")
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="the run's folder")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument(
        "--sinks", nargs="+", choices=SINKS, default=["jsonl"], help="where the logs go"
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a tiny model and 40 steps (log every 10, evaluate every 20), for tests",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-plot", action="store_true", help="no curves.png")
    plot = sub.add_parser(
        "plot", formatter_class=fmt, help="plot a metrics.jsonl, one panel per metric family"
    )
    plot.add_argument("jsonl", help="a metrics.jsonl written by the jsonl sink")
    plot.add_argument(
        "-o", "--output", help="image file (default: curves.png next to the jsonl file)"
    )
    plot.add_argument("--metrics", nargs="+", help="the metrics to plot (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (``2`` for a usage error, after one line on stderr).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    command = f"{parser.prog} {args.command}"
    if args.command == "demo":
        if "jsonl" not in args.sinks and not args.no_plot:
            return _usage(
                command,
                f"--sinks {' '.join(args.sinks)}: the plot is drawn from metrics.jsonl; "
                "add jsonl to --sinks, or pass --no-plot",
            )
        steps, log_every, eval_every = args.steps, args.log_every, args.eval_every
        if args.quick:
            steps, log_every, eval_every = 40, 10, 20
        try:
            run_demo(
                steps=steps,
                seed=args.seed,
                log_every=log_every,
                eval_every=eval_every,
                out=args.out,
                sinks=args.sinks,
                progress=not args.no_progress,
                plot=not args.no_plot,
                config=QUICK if args.quick else None,
            )
        except ImportError as e:
            return _usage(command, str(e))
        return 0
    if not os.path.isfile(args.jsonl):
        return _usage(command, f"{args.jsonl}: no such file; pass a metrics.jsonl of a run")
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.jsonl)), "curves.png")
    try:
        panels = plot_jsonl(args.jsonl, output, args.metrics)
    except (ValueError, ImportError) as e:
        flag = "--metrics" if args.metrics and "not in the log" in str(e) else args.jsonl
        return _usage(command, f"{flag}: {e}")
    print(f"wrote {output}: {len(panels)} panels")
    return 0


def _usage(command: str, message: str) -> int:
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
