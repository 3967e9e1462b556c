"""TL601 unsafe-torch-load: ``torch.load`` that may unpickle arbitrary code."""

from __future__ import annotations

from functools import partial

from collections.abc import Iterator

import libcst as cst

from torchlint.edits import render, with_keyword
from torchlint.facts import ModuleFacts, find_all, find_arg
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo

LOADS = ("torch.load", "torch.serialization.load")


class UnsafeTorchLoad(Rule):
    code = "TL601"
    name = "unsafe-torch-load"
    summary = "torch.load without weights_only=True: loading the file can run arbitrary code"
    needles = ("load",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(LOADS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _ in facts.calls_to(*LOADS):
            arg, _ = find_arg(call.node, "weights_only")
            if arg is None and any(a.star == "**" for a in call.node.args):
                continue  # weights_only is keyword-only: only **kwargs can carry it
            if any(_reads_weights_only(g.test) for g in call.guards):
                continue  # a fallback taken only when the caller asked for weights_only=False
            if arg is None:
                yield Hit(
                    call.node,
                    "torch.load() without weights_only=True unpickles the file, which can run "
                    "arbitrary code (the default before PyTorch 2.6); pass weights_only=True, or "
                    "load weights with safetensors",
                    fix=_fix(facts, call.node),
                )
            elif isinstance(arg.value, cst.Name) and arg.value.value == "False":
                yield Hit(
                    call.node,
                    "torch.load(weights_only=False) unpickles the file, which can run arbitrary "
                    "code; pass weights_only=True (allow-list your own classes with "
                    f"torch.serialization.add_safe_globals), or mark a trusted file with '# noqa: {self.code}'",
                    fix=Fix("Replace weights_only=False with weights_only=True", (NodeEdit(arg.value, "True"),), safe=False),
                )


def _fix(facts: ModuleFacts, call: cst.Call) -> Fix | None:
    """``weights_only=True`` appended; not with ``pickle_module=``, which it refuses."""
    if find_arg(call, "pickle_module", 2)[0] is not None:
        return None
    fixed = with_keyword(call, "weights_only", "True")
    return Fix("Pass weights_only=True", (NodeEdit(call, partial(render, facts.module, call, fixed)),), safe=False)


def _reads_weights_only(test: cst.BaseExpression) -> bool:
    """Whether a condition reads a flag named like ``weights_only`` (``if not weights_only:``)."""
    names = find_all(test, (cst.Name, cst.Attribute))
    return any(
        "weights_only" in (n.value if isinstance(n, cst.Name) else n.attr.value) for n in names
    )
