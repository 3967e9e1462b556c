"""TL204 dropout-always-on: functional dropout with a literal ``training=True`` in an nn.Module:
it keeps dropping after ``model.eval()``, on purpose (Monte-Carlo dropout, a Tacotron prenet) or
by mistake."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, find_arg
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.attention_dropout_ignores_eval import caller_decides, caller_params
from torchlint.rules.dropout_ignores_eval import DROPOUTS, gated_on_training, states_always_on
from torchlint.screen import TreeInfo

# name -> (keyword, position) of the training flag; torch's own functions call it ``train`` and
# have no default
_FLAGS = {
    **{name: ("training", position) for name, position in DROPOUTS.items()},
    "torch.dropout": ("train", 2),
    "torch.feature_dropout": ("train", 2),
    "torch.alpha_dropout": ("train", 2),
    "torch.feature_alpha_dropout": ("train", 2),
}


class DropoutAlwaysOn(Rule):
    code = "TL204"
    name = "dropout-always-on"
    summary = "F.dropout(..., training=True) in an nn.Module: dropout stays on in eval(), on purpose or not"
    needles = ("dropout",)
    default_enabled = False
    off_reason = "every corpus finding (3 of 3) was a deliberate always-on dropout (the Tacotron 2 prenet)"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return bool(info.based_classes) and info.mentions(_FLAGS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, qualname, fn, instance in facts.calls_in_module_methods(*_FLAGS):
            keyword, position = _FLAGS[qualname]
            flag, _ = find_arg(call.node, keyword, position)
            if flag is None or not (isinstance(flag.value, cst.Name) and flag.value.value == "True"):
                continue
            rate, _ = find_arg(call.node, "p", 1)
            if rate is not None and caller_decides(rate.value, caller_params(facts, fn, instance)):
                continue  # an attention helper given its rate: the caller gates it
            if gated_on_training(call, fn, instance, ("p", 1)) or states_always_on(fn, call.node):
                continue
            short = qualname.replace("torch.nn.functional.", "F.")
            yield Hit(
                call.node,
                f"{short}({keyword}=True) keeps dropping after model.eval(): predictions are random at "
                f"inference; pass {keyword}={instance}.training, or say on the line that it is meant "
                f"(Monte-Carlo dropout, a prenet that stays on in eval)",
                fn.cls,
                Fix(
                    f"Replace {keyword}=True with {keyword}={instance}.training",
                    (NodeEdit(flag.value, f"{instance}.training"),),
                    safe=False,  # Monte-Carlo dropout keeps it on in eval() on purpose
                ),
            )
