"""TL702 deprecated-torch-api: a call or import of a deprecated PyTorch function."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint import deprecations
from torchlint.facts import ModuleFacts
from torchlint.rules import Hit, Rule
from torchlint.rules.removed_torch_api import _what
from torchlint.screen import TreeInfo


class DeprecatedTorchApi(Rule):
    code = "TL702"
    name = "deprecated-torch-api"
    summary = "a call or import of a deprecated PyTorch function (torch.qr, functorch.vmap, torch.cuda.amp.autocast, ...)"
    needles = deprecations.needles()
    default_enabled = False
    off_reason = "on the corpus 115 of 267 findings (torch.norm, torch.svd, the Upsampling modules) still work without a warning, and none of the rest is a bug: deprecation advice, opt in"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(deprecations.table())

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        target = self.target_version
        deprecated = {
            q: e for q, e in deprecations.table().items() if e.applies(target) and not e.is_removed(target)
        }
        for use in deprecations.uses(facts, deprecated):
            e = use.entry
            yield Hit(
                use.node,
                f"{_what(use)} {e.name}, which is deprecated since PyTorch {e.deprecated[0]}.{e.deprecated[1]}; "
                f"use {e.use}",
                fix=deprecations.fix_for(facts, use),
            )
