"""The loop-aware walk the training-loop rules (TL5xx) share: order, loop membership, bodies."""

from __future__ import annotations

import textwrap

import libcst as cst

from torchlint.facts import ModuleFacts
from torchlint.rules.loops import assigned_values, bodies, method_name


def _bodies(source: str):
    facts = ModuleFacts(cst.parse_module(textwrap.dedent(source)))
    return facts, bodies(facts)


def test_events_in_order_with_enclosing_loops():
    facts, (module, train) = _bodies(
        """
        def train(loader, opt):
            opt.zero_grad()
            for epoch in range(3):
                for x in loader:
                    x.backward()
                opt.step()
        """
    )
    assert module.function is None and train.function.name == "train"
    names = [(method_name(e.node), len(e.loops)) for e in train.events if e.call]
    assert names == [("zero_grad", 0), ("range", 0), ("backward", 2), ("step", 1)]
    outer, inner = train.loops
    assert [method_name(e.node) for e in train.in_loop(inner)] == ["backward"]
    assert [method_name(e.node) for e in train.in_loop(outer)] == ["backward", "step"]


def test_nested_functions_and_top_level_are_bodies_of_their_own():
    facts, found = _bodies(
        """
        for x in data:
            def closure():
                opt.zero_grad()
            opt.step(closure)
        """
    )
    module, closure = found
    assert [method_name(e.node) for e in module.events if e.call] == ["step"]
    assert module.loops and not closure.loops
    assert [method_name(e.node) for e in closure.events if e.call] == ["zero_grad"]


def test_assigned_values_before_a_node():
    facts, (_, fn) = _bodies(
        """
        def f(x):
            p = softmax(x)
            a = loss(p)
            p = log(p)
            b = loss(p)
        """
    )
    first_loss = next(e.node for e in fn.events if e.call and method_name(e.node) == "loss")
    assert [cst.Module([]).code_for_node(v) for v in assigned_values(fn, "p", first_loss)] == ["softmax(x)"]
    assert len(assigned_values(fn, "p")) == 2
