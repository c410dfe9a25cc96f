"""The one pytree recipe: attrs classes as custom nodes, built without running __init__."""

from __future__ import annotations

import attrs
import jax
import jax.numpy as jnp

from metricskit.metric import register_pytree, replace


@attrs.frozen
class _Node:
    x: object
    y: object
    tag: str


register_pytree(_Node, ["x", "y"], ["tag"])


def test_flatten_with_keys_and_static_metadata():
    node = _Node(jnp.ones(2), 3.0, "a")
    leaves, treedef = jax.tree.flatten(node)
    assert len(leaves) == 2 and jax.tree.unflatten(treedef, leaves).tag == "a"
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(node)[0]]
    assert paths == [".x", ".y"]
    assert jax.tree.structure(_Node(1, 2, "a")) != jax.tree.structure(_Node(1, 2, "b"))


def test_replace_builds_a_new_instance_and_leaves_the_old_one():
    node = _Node(1, 2, "a")
    new = replace(node, {"y": 5})
    assert (node.y, new.y, new.x, new.tag) == (2, 5, 1, "a")
    assert jax.jit(lambda n: replace(n, {"x": n.x + 1}))(_Node(jnp.int32(1), 0, "t")).x == 2


def test_replace_refuses_a_field_that_does_not_exist():
    import pytest

    @attrs.frozen
    class Point:
        x: int
        y: int

    with pytest.raises(TypeError, match=r"\['z'\], which are not fields of Point"):
        replace(Point(1, 2), {"z": 3})
