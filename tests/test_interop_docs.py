"""The interop pages' examples (flax NNX, equinox, optax) run and print what they show.

Sphinx's doctest builder runs them in the docs build; these tests run the same ``{doctest}``
blocks with the standard library's :mod:`doctest`, so that every test environment with the
libraries (the ``test`` extra) checks them too, under the suite's warnings-as-errors.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parents[1] / "docs" / "interop"
PAGES = ["flax_nnx.md", "equinox.md", "optax.md"]


def _examples(page: Path) -> str:
    """The page's ``{doctest}`` blocks, everything else blanked out (line numbers kept).

    Sphinx runs a page's blocks in one namespace too.
    """
    kept, inside = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = line == "```{doctest}"
            line = ""
        kept.append(line if inside else "")
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("name", PAGES)
def test_interop_page_examples(name):
    page = INTEROP / name
    test = doctest.DocTestParser().get_doctest(_examples(page), {}, name, str(page), 0)
    assert len(test.examples) > 10
    failures: list[str] = []
    # pyproject's doctest_optionflags, and Sphinx's doctest builder's True-is-not-1
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
    runner = doctest.DocTestRunner(optionflags=flags | doctest.REPORT_ONLY_FIRST_FAILURE)
    runner.run(test, out=failures.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(failures)
    assert result.attempted == len(test.examples)
