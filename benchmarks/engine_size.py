"""How big the engine is and how many of its modules one call crosses (issue 23's measures).

``python benchmarks/engine_size.py [--root metricskit]`` prints:

- the engine's code lines: lines with code, not blank, comment or docstring lines, of every
  module except the task metrics, integrations, demo, sinks, summary, plot and CLI (and the
  same with raw lines);
- the metricskit modules (and switches between them) that a warm eager ``update`` and the
  first ``get_metrics`` of an evaluation aggregate cross, counted with ``sys.setprofile``.
"""

from __future__ import annotations

import argparse
import ast
import io
import pathlib
import sys
import tokenize
from collections.abc import Callable
from typing import Any

OUTSIDE = {"tasks", "integrations", "demo"}
OUTSIDE_FILES = {"sinks.py", "summary.py", "plot.py", "__main__.py"}


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                docs.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in skip or tok.type == tokenize.ENDMARKER:
            continue
        lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def size(root: pathlib.Path) -> None:
    total = raw = modules = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in OUTSIDE or rel.name in OUTSIDE_FILES:
            continue
        source = path.read_text()
        n = code_lines(source)
        print(f"{n:6d} {len(source.splitlines()):6d}  {rel}")
        total, raw, modules = total + n, raw + len(source.splitlines()), modules + 1
    print(f"engine: {modules} modules, {total} code lines, {raw} raw lines")


def crossed(fn: Callable[[], Any]) -> tuple[list[str], int]:
    """The metricskit modules whose functions ``fn`` calls, and the switches between them."""
    modules: set[str] = set()
    switches, last = 0, None

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal switches, last
        name = frame.f_globals.get("__name__", "")
        if event != "call" or not name.startswith("metricskit"):
            return
        modules.add(name)
        if name != last:
            switches, last = switches + 1, name

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return sorted(modules), switches


def crossings() -> None:
    import jax
    import jax.numpy as jnp

    import metricskit as mk
    from metricskit.functional import aggregate_metrics, get_metrics, update_metrics

    store = mk.MetricStore(default_log_modes=("mean", "max")).init({"loss": 0.0, "acc": 0.0})
    step = {"loss": jnp.float32(1.0), "acc": jnp.float32(0.5)}
    for _ in range(3):
        store = store.update(step)
    modules, switches = crossed(lambda: store.update(step))
    print(f"warm eager update: {len(modules)} modules, {switches} switches: {modules}")

    @jax.jit
    def eval_step(x: jax.Array) -> mk.MetricStore:
        per_sample = {
            "value": x,
            "count": jnp.ones_like(x),
            "log_modes": ["single_noreduce_wcount"],
        }
        mean = {"value": x.sum(), "count": x.size, "log_modes": ["mean"]}
        return update_metrics(None, {"ll": per_sample, "acc": mean})

    aggregated: dict[str, Any] = {}
    for i in range(4):
        aggregated = aggregate_metrics(aggregated, eval_step(jnp.arange(8.0) + i))
    modules, switches = crossed(lambda: get_metrics(aggregated))
    print(f"first get_metrics of an eval aggregate: {len(modules)} modules, {switches} switches")
    print(f"  {modules}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).parents[1] / "metricskit"))
    args = parser.parse_args()
    size(pathlib.Path(args.root))
    crossings()


if __name__ == "__main__":
    main()
