"""The shared shape model: which sizes are known, what layers read and write, and feeding."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from torchlint.facts import ModuleFacts
from torchlint.shapes import CHANNEL, LAST, Feature, ShapeModel, feed


def model(source: str) -> ShapeModel:
    return ShapeModel(ModuleFacts(cst.parse_module(textwrap.dedent(source))))


def layer_of(source: str):
    """The layer built by the first (outermost) call in the function ``f`` of ``source``."""
    m = model(source)
    call = [c for c in m.facts.calls if c.function and c.function.name == "f"][0]
    return m.layer(call.node, call.function)


@pytest.mark.parametrize(
    "body, size",
    [
        ("nn.Linear(784, 256)", 784),
        ("nn.Linear(28 * 28, 256)", 784),
        ("nn.Linear(in_features=HIDDEN, out_features=1)", 512),
        ("nn.Linear(width, 1)", 64),
        ("nn.Linear(d, 1)", None),
        ("nn.Linear(twice, 1)", None),
        ("nn.Linear(*sizes)", None),
    ],
)
def test_known_sizes_are_literals_or_bound_once(body, size):
    source = f"""
    import torch.nn as nn
    HIDDEN = 512
    def f(d=784, sizes=()):
        width = 64
        twice = 1
        twice = 2
        return {body}
    """
    assert layer_of(source).in_size == size


def test_layers_read_and_write_axes():
    source = """
    from torch import nn
    def f():
        return nn.Conv2d(3, 32, 3, groups=1), nn.BatchNorm1d(32), nn.LayerNorm([16]), nn.Embedding(10, 8)
    """
    m = model(source)
    fn = next(f for f in m.facts.functions if f.name == "f")
    tup = fn.node.body.body[0].body[0].value
    conv, bn, ln, emb = (m.layer(e.value, fn) for e in tup.elements)
    assert (conv.reads, conv.in_size, conv.writes, conv.out_size, conv.bias) == (CHANNEL, 3, CHANNEL, 32, True)
    assert (ln.reads, ln.in_size) == (LAST, 16)
    assert (emb.reads, emb.writes, emb.out_size) == (None, LAST, 8)
    out, mismatch = feed(bn, Feature(64, LAST, "fc"))
    assert mismatch is not None and mismatch.expected == 32
    out, mismatch = feed(bn, Feature(32, LAST, "fc"))
    assert mismatch is None and out.axis == LAST


def test_feed_passes_through_preserving_layers_and_stops_at_unknown_ones():
    source = """
    import torch.nn as nn
    def f():
        return nn.Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 8, 1), nn.Flatten())
    """
    seq = layer_of(source)
    relu, pool, conv, flatten = seq.elements
    assert feed(relu, Feature(5, LAST, "x"))[0].size == 5
    assert feed(pool, Feature(5, LAST, "x"))[0] is None
    assert feed(pool, Feature(16, CHANNEL, "x"))[0].size == 16
    assert feed(flatten, Feature(8, CHANNEL, "x"))[0] is None
    assert feed(seq, Feature(32, CHANNEL, "x"))[1].expected == 16
    assert feed(seq, Feature(32, LAST, "x")) == (None, None)


def test_factory_dims_with_symbols_and_transposes():
    source = """
    import torch
    import torch.nn as nn
    def f(d_in, d_out):
        a = nn.Parameter(torch.randn(784, 256) * 0.02)
        b = torch.empty((d_in, d_out)).normal_()
        c = torch.randn(10, 20).t()
        return a, b, c
    """
    m = model(source)
    fn = next(f for f in m.facts.functions if f.name == "f")
    a, b, c = (m.dims(cst.Name(n), fn) for n in "abc")
    assert a == (784, 256)
    assert [str(d).split(":")[1] for d in b] == ["d_in", "d_out"]
    assert c == (20, 10)
