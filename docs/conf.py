"""Sphinx configuration: autoapi reference, Google docstrings, MyST pages, doctests."""

from __future__ import annotations

from typing import Any

project = "metricskit"
author = "metricskit developers"
copyright = "2026, metricskit developers"

extensions = [
    "autoapi.extension",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

autoapi_type = "python"
autoapi_dirs = ["../metricskit"]
autoapi_root = "api"
autoapi_add_toctree_entry = False
autoapi_member_order = "bysource"
autoapi_options = [
    "members",
    "undoc-members",
    "private-members",
    "show-inheritance",
    "show-module-summary",
]
autoapi_python_class_content = "class"

# The functional API documents two private names (they are part of its documented surface).
_DOCUMENTED_PRIVATE = {
    "metricskit.functional._empty_val",
    "metricskit.functional._update_single_metric",
}


def _skip_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool:
    short = name.rsplit(".", 1)[-1]
    if short.startswith("_") and not short.startswith("__"):
        return name not in _DOCUMENTED_PRIVATE
    return skip


def setup(app: Any) -> None:
    app.connect("autoapi-skip-member", _skip_member)


napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_attr_annotations = True

myst_enable_extensions = ["colon_fence"]
doctest_global_setup = "import numpy as np"

html_theme = "furo"
html_title = "metricskit"
