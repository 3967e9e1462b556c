"""TL504 softmax-implicit-dim: softmax, log_softmax, softmin or their modules without ``dim``."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, find_arg
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo

# callee -> position of ``dim`` (torch.softmax and Tensor.softmax require dim: they raise, not drift)
IMPLICIT_DIM = {
    "torch.nn.functional.softmax": 1,
    "torch.nn.functional.log_softmax": 1,
    "torch.nn.functional.softmin": 1,
    "torch.nn.Softmax": 0,
    "torch.nn.LogSoftmax": 0,
    "torch.nn.Softmin": 0,
    "torch.nn.modules.activation.Softmax": 0,
    "torch.nn.modules.activation.LogSoftmax": 0,
    "torch.nn.modules.activation.Softmin": 0,
}


class SoftmaxImplicitDim(Rule):
    code = "TL504"
    name = "softmax-implicit-dim"
    summary = "softmax/log_softmax/softmin (function or module) without dim: the implicit dim is often the batch"
    needles = ("softmax", "Softmax", "softmin", "Softmin")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(IMPLICIT_DIM)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, qualname in facts.calls_to(*IMPLICIT_DIM):
            dim, maybe = find_arg(call.node, "dim", IMPLICIT_DIM[qualname])
            if maybe or (dim is not None and not _is_none(dim.value)):
                continue
            short = qualname.rsplit(".", 1)[1]
            spelled = f"nn.{short}" if short[0].isupper() else f"F.{short}"
            yield Hit(
                call.node,
                f"{spelled}() without dim: the dimension is guessed from the input's rank (dim 0 for "
                f"0-, 1- and 3-D inputs, else dim 1), so a 3-D (batch, seq, classes) input is "
                f"normalised across the batch; pass dim= explicitly (usually dim=-1)",
                call.cls if call.cls is not None and call.cls.is_module else None,
            )


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"
