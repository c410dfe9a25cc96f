"""Check that the built API page of the functional module documents the spec's surface.

Usage: ``python docs/check_api_page.py BUILD_DIR`` after ``sphinx-build -b html docs BUILD_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPEC = {
    "update_metrics": ["global_metrics", "step_metrics", "default_log_modes"],
    "aggregate_metrics": ["aggregated_metrics", "batch_metrics"],
    "_empty_val": ["value"],
    "_update_single_metric": ["global_metrics", "key", "value", "count", "log_modes"],
    "get_metrics": ["global_metrics", "reset_metrics"],
}


def main(build: Path) -> int:
    """Return 0 when every function and parameter of the spec is on the page, else 1."""
    page = (build / "api" / "metricskit" / "functional" / "index.html").read_text()
    missing = [
        name for name in ["LOGGER", *SPEC] if f'id="metricskit.functional.{name}"' not in page
    ]
    for name, params in SPEC.items():
        start = page.find(f'id="metricskit.functional.{name}"')
        signature = page[start : page.find("</dt>", start)]
        missing += [f"{name}({p})" for p in params if f">{p}<" not in signature]
    if missing:
        print("missing from the functional API page:", ", ".join(missing))
        return 1
    print(f"functional API page documents {len(SPEC)} functions, LOGGER and their parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
