"""TL505 clip-before-unscale: gradient clipping on AMP-scaled gradients (no ``scaler.unscale_``)."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts
from torchlint.rules import Hit, Rule
from torchlint.rules.loops import Event, bodies, method_name, receiver

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

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for body in bodies(facts):
            scaler: cst.BaseExpression | None = None
            for event in body.events:
                if event.call is None:
                    continue
                found = scaled_backward(event)
                if found is not None:
                    scaler = found
                elif method_name(event.node) == "unscale_":
                    scaler = None
                elif scaler is not None and facts.call_qualname(event.call) in CLIPS:
                    name = cst.Module([]).code_for_node(scaler)
                    short = facts.call_qualname(event.call).rsplit(".", 1)[1]
                    yield Hit(
                        event.node,
                        f"{short}() runs on gradients still multiplied by the loss scale of "
                        f"{name}.scale(loss).backward() (65536x by default): almost every step is clipped "
                        f"and, once unscaled, the update is shrunk by the loss scale; call "
                        f"{name}.unscale_(optimizer) before clipping",
                    )
