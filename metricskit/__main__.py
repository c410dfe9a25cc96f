"""The command line: ``python -m metricskit demo`` and ``python -m metricskit plot``.

A mistake in the arguments is one line naming the flag and the fix (exit status 2), never a
traceback; ``--help`` shows every default.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the flag, the problem, where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog="python -m metricskit", formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        formatter_class=fmt,
        help="train a byte-level language model on the standard library's source",
        description="Train a small byte-level language model on the source of Python's "
        "standard library (read from this interpreter: no download), logging training "
        "metrics, evaluations on held-out text, a summary table, a plot and checkpoints.",
    )
    demo.add_argument(
        "--steps",
        type=_positive,
        default=argparse.SUPPRESS,
        help=f"training steps (default: {_DEFAULTS['steps']})",
    )
    demo.add_argument(
        "--log-every",
        type=_positive,
        default=argparse.SUPPRESS,
        help=f"steps between logs (default: {_DEFAULTS['log_every']})",
    )
    demo.add_argument(
        "--eval-every",
        type=_positive,
        default=argparse.SUPPRESS,
        help=f"steps between evaluations (default: {_DEFAULTS['eval_every']})",
    )
    demo.add_argument("--out", default=os.path.join("runs", "demo"), help="the run's folder")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument(
        "--sinks", nargs="+", choices=SINKS, default=["jsonl"], help="where the logs go"
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a tiny model and, unless given, 40 steps, --log-every 10, --eval-every 20 "
        "(for tests)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-plot", action="store_true", help="no curves.png")
    plot = sub.add_parser(
        "plot", formatter_class=fmt, help="plot a metrics.jsonl, one panel per metric family"
    )
    plot.add_argument("jsonl", help="a metrics.jsonl written by the jsonl sink")
    plot.add_argument(
        "-o",
        "--output",
        default=argparse.SUPPRESS,
        help="image file (default: curves.png next to the jsonl file)",
    )
    plot.add_argument(
        "--metrics",
        nargs="+",
        default=argparse.SUPPRESS,
        help="the metrics to plot, by logged name (default: all)",
    )
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
        presets = _QUICK if args.quick else _DEFAULTS
        steps, log_every, eval_every = (
            getattr(args, name, presets[name]) for name in ("steps", "log_every", "eval_every")
        )
        problem = _unusable_out(args.out)
        if problem:
            return _usage(command, f"--out {args.out}: {problem}")
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
        except OSError as e:  # the folder became unusable while the run went on
            return _usage(command, f"--out {args.out}: {e.strerror or e}: {e.filename}")
        return 0
    if os.path.isdir(args.jsonl) or not os.path.isfile(args.jsonl):
        what = "a folder" if os.path.isdir(args.jsonl) else "no such file"
        return _usage(command, f"{args.jsonl}: {what}; pass the metrics.jsonl of a run")
    metrics = getattr(args, "metrics", None)
    output = getattr(args, "output", None) or os.path.join(
        os.path.dirname(os.path.abspath(args.jsonl)), "curves.png"
    )
    if os.path.isdir(output):
        return _usage(command, f"-o {output}: a folder; pass an image file name")
    try:
        panels = plot_jsonl(args.jsonl, output, metrics)
    except (ValueError, ImportError, OSError) as e:
        if metrics and "not in the log" in str(e):
            flag = "--metrics"
        elif isinstance(e, OSError) or "image" in str(e).lower() or "format" in str(e).lower():
            flag = f"-o {output}"
        else:
            flag = args.jsonl
        return _usage(command, f"{flag}: {e}")
    print(f"wrote {output}: {len(panels)} panel{'s' if len(panels) != 1 else ''}")
    return 0


_DEFAULTS = {"steps": 400, "log_every": 20, "eval_every": 100}
_QUICK = {"steps": 40, "log_every": 10, "eval_every": 20}
_OUTPUTS = ("metrics.jsonl", "metrics.csv", "curves.png", "train_state.npz", "eval_state.npz")


def _unusable_out(out: str) -> str | None:
    """Why the run folder ``out`` cannot hold a run (checked before training), or None."""
    if not out:
        return "empty; pass a folder"
    if os.path.exists(out) and not os.path.isdir(out):
        return "a file, not a folder; pass a folder"
    parent = out
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent.rstrip(os.sep))
    parent = parent or os.curdir
    if not os.path.isdir(parent):
        return f"{parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    clashes = [name for name in _OUTPUTS if os.path.isdir(os.path.join(out, name))]
    if clashes:
        return f"{', '.join(clashes)} in it {'is a folder' if len(clashes) == 1 else 'are folders'}"
    return None


def _usage(command: str, message: str) -> int:
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
