"""TL707 deprecated-torchvision-transform: ``torchvision.transforms.v2.ToTensor`` (and
``v2.functional.to_tensor``), deprecated in the v2 API."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint import deprecations
from torchlint.facts import ModuleFacts
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo


def _entry(name: str, use: str) -> deprecations.Entry:
    return deprecations.Entry(name=name, deprecated=(0, 0), removed=None, use=use)


_TO_TENSOR = "v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])"
_TO_TENSOR_FN = "v2.functional.to_dtype(v2.functional.to_image(x), torch.float32, scale=True)"
DEPRECATED = {
    e.name: e
    for e in (
        _entry("torchvision.transforms.v2.ToTensor", _TO_TENSOR),
        _entry("torchvision.transforms.v2._deprecated.ToTensor", _TO_TENSOR),
        _entry("torchvision.transforms.v2.functional.to_tensor", _TO_TENSOR_FN),
        _entry("torchvision.transforms.v2.functional._deprecated.to_tensor", _TO_TENSOR_FN),
    )
}


class DeprecatedTorchvisionTransform(Rule):
    code = "TL707"
    name = "deprecated-torchvision-transform"
    summary = "torchvision.transforms.v2.ToTensor: deprecated, use v2.ToImage() and v2.ToDtype(scale=True)"
    needles = ("ToTensor", "to_tensor")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(DEPRECATED)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for use in deprecations.uses(facts, DEPRECATED):
            e = use.entry
            shown = e.name.replace("._deprecated", "")
            verb = "importing" if use.kind == "import" else "calling"
            yield Hit(
                use.node,
                f"{verb} {shown}, which is deprecated in torchvision's v2 transforms and will be removed; "
                f"use {e.use}",
            )
