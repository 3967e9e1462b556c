"""TL505 clip-before-unscale: gradient clipping on AMP-scaled gradients (no ``scaler.unscale_``)."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, children, code_of
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.loops import Body, Event, bodies, method_name, receiver
from torchlint.screen import TreeInfo

CLIPS = {
    f"{package}.{name}"
    for package in ("torch.nn.utils", "torch.nn.utils.clip_grad")
    for name in ("clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "clip_grads_with_norm_")
}


def scaled_backward(event: Event) -> cst.BaseExpression | None:
    """``scaler.scale(loss).backward()`` -> ``scaler``."""
    if event.call is None or method_name(event.node) != "backward":
        return None
    inner = receiver(event.node)
    if isinstance(inner, cst.Call) and method_name(inner) == "scale":
        return receiver(inner)
    return None


class ClipBeforeUnscale(Rule):
    code = "TL505"
    name = "clip-before-unscale"
    summary = "clip_grad_norm_ after scaler.scale(loss).backward() without scaler.unscale_(): clips scaled gradients"
    needles = ("clip_grad",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(CLIPS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for body in bodies(facts):
            scaler: cst.BaseExpression | None = None
            for index, event in enumerate(body.events):
                if event.call is None:
                    continue
                found = scaled_backward(event)
                if found is not None:
                    scaler = found
                elif method_name(event.node) == "unscale_":
                    scaler = None
                elif scaler is not None and facts.call_qualname(event.call) in CLIPS:
                    name = code_of(scaler)
                    short = facts.call_qualname(event.call).rsplit(".", 1)[1]
                    yield Hit(
                        event.node,
                        f"{short}() runs on gradients still multiplied by the loss scale of "
                        f"{name}.scale(loss).backward() (65536x by default): almost every step is clipped "
                        f"and, once unscaled, the update is shrunk by the loss scale; call "
                        f"{name}.unscale_(optimizer) before clipping",
                        fix=_unscale_first(facts, body, index, name),
                    )


def _unscale_first(facts: ModuleFacts, body: Body, index: int, scaler: str) -> Fix | None:
    """``scaler.unscale_(optimizer)`` on a line before the clip's statement, the optimizer being
    the one ``scaler.step(optimizer)`` steps after the clip. Only when that is certain and the
    call runs once per step: a single stepped optimizer, no ``unscale_`` of its own before the
    step, the step in the same loops as the clip and under every condition the clip is under
    (a second ``unscale_`` before ``update()`` raises)."""
    clip = body.events[index]
    steps, unscaled = [], False
    for event in body.events[index + 1 :]:
        if event.call is None or _code(receiver(event.node)) != scaler:
            continue
        if method_name(event.node) == "unscale_":
            unscaled = True
        elif method_name(event.node) == "step" and event.node.args:
            steps.append(event)
    optimizers = {_code(e.node.args[0].value) for e in steps}
    if unscaled or len(optimizers) != 1:
        return None
    step = steps[0]
    clip_guards = {(id(g.test), g.positive) for g in clip.call.guards}
    if step.loops != clip.loops or not {(id(g.test), g.positive) for g in step.call.guards} <= clip_guards:
        return None
    statement = _statement_of(body.node, clip.node)
    if statement is None:
        return None
    call = f"{scaler}.unscale_({optimizers.pop()})"
    return Fix(f"Call {call} before clipping", (NodeEdit(statement, call, before=True),))


def _code(expr: cst.CSTNode | None) -> str | None:
    return None if expr is None else code_of(expr)


def _statement_of(root: cst.CSTNode, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
    """The statement line holding ``node``, when it is one (not a compound statement's header)."""
    path: list[cst.CSTNode] = []

    def find(at: cst.CSTNode) -> bool:
        path.append(at)
        if at is node or any(find(child) for child in children(at)):
            return True
        path.pop()
        return False

    if not find(root):
        return None
    statements = [p for p in path if isinstance(p, cst.BaseStatement)]
    return statements[-1] if statements and isinstance(statements[-1], cst.SimpleStatementLine) else None
