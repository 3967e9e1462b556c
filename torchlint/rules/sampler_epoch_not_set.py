"""TL506 sampler-epoch-not-set: a shuffling DistributedSampler whose ``set_epoch`` is never called."""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, code_of, find_all, find_arg, is_true
from torchlint.rules import Hit, Rule
from torchlint.rules.loops import (
    Body,
    Event,
    Loop,
    body_of,
    called_functions,
    method_name,
)
from torchlint.screen import TreeInfo

SAMPLERS = ("torch.utils.data.distributed.DistributedSampler", "torch.utils.data.DistributedSampler")
_EVAL_WORDS = {"val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev", "predict", "inference"}
_ITERATION_HELPERS = {"enumerate", "iter", "len", "zip", "next", "list", "tqdm", "trange", "print"}
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


class SamplerEpochNotSet(Rule):
    code = "TL506"
    name = "sampler-epoch-not-set"
    summary = "DistributedSampler shuffling across epochs without set_epoch(): every epoch has the same order"
    needles = ("DistributedSampler",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(SAMPLERS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _ in facts.calls_to(*SAMPLERS):
            shuffle, maybe = find_arg(call.node, "shuffle", 3)
            if maybe or (shuffle is not None and not is_true(shuffle.value)):
                continue
            if call.cls is not None and call.cls.is_module:
                continue  # a LightningModule's dataloader hook: the trainer calls set_epoch
            body = body_of(facts, call.function)
            if body is None:
                continue
            event = next((e for e in body.events if e.node is call.node), None)
            if event is None:
                continue
            names = _names_around(body, event)
            if any(_is_evaluation(text) for text in names | {code_of(a.value) for a in call.node.args}):
                continue
            loop = _epoch_loop(body, names)
            stored = {n.rsplit(".", 1)[1] for n in names if n.startswith("self.")}
            if loop is None and call.cls is not None and stored:
                if any(_sets_epoch_on_attribute(c.node, stored | {"sampler"}) for c in facts.calls):
                    continue  # ``runner.train_sampler.set_epoch(e)`` in a callback of the file
                body, loop = _epoch_loop_in_methods(facts, call.cls, names)
            if loop is None or _handed_to_unknown_helper(facts, body, loop, names):
                continue
            if _sets_epoch(facts, body, loop, names):
                continue
            yield Hit(
                call.node,
                "DistributedSampler shuffles with a seed plus its epoch, and set_epoch() is never called: "
                "every epoch sees the same order; call sampler.set_epoch(epoch) at the start of each epoch",
            )


def _names_around(body: Body, sampler: Event) -> set[str]:
    """The names the sampler is bound to, and the names of loaders built from it."""
    names: set[str] = set()
    for event in body.events:
        if not isinstance(event.node, cst.Assign):
            continue
        value = event.node.value
        if _contains(value, sampler.node) or (isinstance(value, cst.Call) and any(_reads(value, n) for n in names)):
            for t in event.node.targets:
                names.add(code_of(t.target))
    return names


def _epoch_loop(body: Body, names: set[str]) -> Loop | None:
    """A loop over epochs: one that mentions an epoch, or one around a loop over the loader."""
    for loop in body.loops:
        if "epoch" in code_of(_loop_header(loop)).lower():
            return loop
        for inner in body.loops:
            if inner is not loop and isinstance(inner, cst.For) and _contains(loop.body, inner):
                if any(_reads(inner.iter, n) for n in names):
                    return loop
    return None


def _epoch_loop_in_methods(facts: ModuleFacts, cls, names: set[str]) -> tuple[Body | None, Loop | None]:
    """For a sampler stored on the instance (``self.train_sampler``): the epoch loop of another
    method of the class (``fit`` running ``for epoch in range(...)``)."""
    for fn in cls.methods.values():
        body = body_of(facts, fn)
        loop = _epoch_loop(body, names) if body is not None else None
        if loop is not None:
            return body, loop
    return None, None


def _handed_to_unknown_helper(facts: ModuleFacts, body: Body, loop: Loop, names: set[str]) -> bool:
    """The epoch loop passes the sampler or loader to a function defined elsewhere
    (``train_one_epoch(model, loader, epoch)``), which may call set_epoch itself."""
    for event in body.in_loop(loop):
        call = event.call
        if call is None or called_functions(facts, call) or method_name(call.node) in _ITERATION_HELPERS:
            continue
        if any(_reads(arg.value, n) for arg in call.node.args for n in names):
            return True
    return False


def _loop_header(loop: Loop) -> cst.BaseExpression:
    if isinstance(loop, cst.For):
        return cst.Tuple([cst.Element(loop.target), cst.Element(loop.iter)])
    return loop.test


def _is_evaluation(text: str) -> bool:
    return any(w.lower() in _EVAL_WORDS for w in _WORD.findall(text.replace("_", " ")))


def _sets_epoch(facts: ModuleFacts, body: Body, loop: Loop, names: set[str]) -> bool:
    """Whether ``set_epoch`` reaches this sampler: called on it or on what holds it
    (``sampler.set_epoch``, ``loader.sampler.set_epoch``, ``getattr(loader.sampler, "set_epoch")``)
    in this function, or in any method for one stored on the instance (``self.sampler``); or
    called by a function of this file that the epoch loop hands the sampler or its loader to."""
    stored = {n for n in names if "." in n}
    for call in facts.calls:
        here = call.function is body.function
        held = names if here else stored
        if held and _sets_epoch_on(call.node, held):
            return True
    for event in body.in_loop(loop):
        if event.call is None or not any(_reads(a.value, n) for a in event.call.node.args for n in names):
            continue
        for fn in called_functions(facts, event.call):
            if any(_sets_epoch_on(c.node, None) for c in fn.calls):
                return True
    return False


def _sets_epoch_on(call: cst.Call, names: set[str] | None) -> bool:
    """``x.set_epoch(...)`` or ``getattr/hasattr(x, "set_epoch")`` with ``x`` reading one of
    ``names`` (any ``x`` when ``names`` is None)."""
    owner = _epoch_owner(call)
    return owner is not None and (names is None or any(_reads(owner, n) for n in names))


def _sets_epoch_on_attribute(call: cst.Call, attrs: set[str]) -> bool:
    """``x.set_epoch(...)`` (or ``getattr/hasattr(x, "set_epoch")``) with ``x`` reaching one of
    ``attrs`` of anything (``runner.train_sampler``, ``self.loaders[0].sampler``)."""
    owner = _epoch_owner(call)
    while isinstance(owner, (cst.Attribute, cst.Subscript, cst.Call)):
        if isinstance(owner, cst.Attribute) and owner.attr.value in attrs:
            return True
        owner = owner.func if isinstance(owner, cst.Call) else owner.value
    return False


def _epoch_owner(call: cst.Call) -> cst.BaseExpression | None:
    """What a call sets the epoch on: ``x`` in ``x.set_epoch(...)`` or ``getattr/hasattr(x,
    "set_epoch")``; None for any other call."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "set_epoch":
        return func.value
    if call.args and any(isinstance(a.value, cst.SimpleString) and "set_epoch" in a.value.value for a in call.args[1:]):
        return call.args[0].value
    return None


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    return any(n is node for n in find_all(tree, cst.CSTNode))


def _reads(tree: cst.CSTNode, dotted: str) -> bool:
    return any(code_of(n) == dotted for n in find_all(tree, (cst.Name, cst.Attribute)))
