"""TL703 checkpoint-use-reentrant: ``torch.utils.checkpoint.checkpoint`` without ``use_reentrant``."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint.edits import render, with_keyword
from torchlint.facts import ModuleFacts, find_arg
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo

CHECKPOINTS = ("torch.utils.checkpoint.checkpoint", "torch.utils.checkpoint.checkpoint_sequential")


class CheckpointUseReentrant(Rule):
    code = "TL703"
    name = "checkpoint-use-reentrant"
    summary = "torch.utils.checkpoint without use_reentrant=: the default is deprecated and will change"
    needles = ("checkpoint",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A call of checkpoint or checkpoint_sequential given neither ``use_reentrant=`` nor ``**``."""
        leaves = {q.rsplit(".", 1)[1] for q in CHECKPOINTS}
        return info.mentions(CHECKPOINTS) and any(
            info.callee_leaves(call) & leaves and not any(k.arg in ("use_reentrant", None) for k in call.keywords)
            for call in info.calls
        )

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, name in facts.calls_to(*CHECKPOINTS):
            arg, _ = find_arg(call.node, "use_reentrant")
            if arg is not None or any(a.star == "**" for a in call.node.args):
                continue  # given, or maybe given through **kwargs (it is keyword-only for checkpoint)
            if name.endswith("_sequential") and _positional(call.node) >= 4:
                continue  # checkpoint_sequential(functions, segments, input, use_reentrant)
            short = name.rsplit(".", 1)[1]
            fixed = with_keyword(call.node, "use_reentrant", "False")
            yield Hit(
                call.node,
                f"{short}() without use_reentrant=: the implicit default (True, the reentrant variant) is "
                "deprecated, warns on every call and is due to become an error; pass use_reentrant=False "
                "(recommended) or use_reentrant=True to keep today's behaviour",
                fix=Fix("Pass use_reentrant=False", (NodeEdit(call.node, render(facts.module, call.node, fixed)),), safe=False),
            )


def _positional(call) -> int:
    return sum(1 for a in call.args if a.keyword is None and not a.star)
