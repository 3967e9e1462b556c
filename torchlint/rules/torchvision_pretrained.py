"""TL706 torchvision-pretrained: a torchvision model builder called with the legacy
``pretrained=`` / ``pretrained_backbone=`` instead of ``weights=`` / ``weights_backbone=``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cache
from importlib import resources

import libcst as cst

from torchlint.deprecations import compatibility_calls, spell
from torchlint.edits import render
from torchlint.facts import CallInfo, ModuleFacts, Scope
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LEGACY = {"pretrained": "weights", "pretrained_backbone": "weights_backbone"}
# weights= came with torchvision 0.13, the release for PyTorch 1.12: an older target-version
# cannot use it.
WEIGHTS_SINCE = (1, 12)
SUBPACKAGES = {"detection", "segmentation", "video", "optical_flow", "quantization"}


@cache
def builders() -> dict[str, dict[str, str]]:
    """``"[subpackage.]builder"`` -> {legacy argument: "package:Enum.MEMBER" or ""}."""
    text = resources.files("torchlint").joinpath("data", "torchvision_weights.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)["builders"]


def builder_key(qualname: str) -> str | None:
    """``torchvision.models.detection.faster_rcnn.fasterrcnn_resnet50_fpn`` ->
    ``detection.fasterrcnn_resnet50_fpn``, when that is a builder torchvision has."""
    parts = qualname.split(".")
    if parts[:2] != ["torchvision", "models"] or len(parts) < 3:
        return None
    sub = parts[2] if parts[2] in SUBPACKAGES and len(parts) > 3 else ""
    key = f"{sub}.{parts[-1]}" if sub else parts[-1]
    return key if key in builders() else None


class TorchvisionPretrained(Rule):
    code = "TL706"
    name = "torchvision-pretrained"
    summary = "torchvision model built with the legacy pretrained=: use weights= (the same weights, named)"
    needles = ("pretrained",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A builder's name (the rule knows builders by their last name, under any module)."""
        return info.spells(key.rsplit(".", 1)[-1] for key in builders())

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        if self.target_version is not None and self.target_version < WEIGHTS_SINCE:
            return
        compat: set[int] | None = None
        for call, qualname in facts.calls_to("torchvision.models."):
            key = builder_key(qualname)
            if key is None:
                continue
            legacy = _legacy_args(call.node)
            if not legacy:
                continue
            compat = compatibility_calls(facts) if compat is None else compat
            if id(call.node) in compat:
                continue  # the branch that keeps torchvision < 0.13 working
            table = builders()[key]
            names = " and ".join(f"{name}=" for name, _ in legacy)
            new = " and ".join(f"{LEGACY[name]}=" for name, _ in legacy)
            weights = table.get("pretrained", "")
            which = (
                f"weights={weights.split(':')[1]} loads what pretrained=True does"
                if weights
                else "pick the weights enum for what pretrained=True loaded"
            )
            yield Hit(
                call.node,
                f"{names} {'is' if len(legacy) == 1 else 'are'} deprecated since torchvision 0.13 and warn"
                f"{'s' if len(legacy) == 1 else ''} on every call; pass {new} instead ({which}, weights=None "
                "what pretrained=False does)",
                fix=_fix(facts, call, legacy, table),
            )


def _legacy_args(call: cst.Call) -> list[tuple[str, cst.Arg]]:
    """The legacy arguments: by keyword, or a literal True/False as the first positional one."""
    found = [(a.keyword.value, a) for a in call.args if a.keyword is not None and a.keyword.value in LEGACY]
    first = call.args[0] if call.args else None
    if (
        first is not None
        and first.keyword is None
        and not first.star
        and isinstance(first.value, cst.Name)
        and first.value.value in ("True", "False")
    ):
        found.insert(0, ("pretrained", first))
    return found


def _fix(facts: ModuleFacts, call: CallInfo, legacy: list[tuple[str, cst.Arg]], table: dict[str, str]) -> Fix | None:
    node = call.node
    keywords = {a.keyword.value for a in node.args if a.keyword is not None}
    if keywords & set(LEGACY.values()):
        return None  # weights= given too: torchvision refuses the call, the author must choose
    positional = [a for a in node.args if a.keyword is None]
    scope = call.scope or facts.module_scope
    imports: list[tuple[str, str | None]] = []
    replaced: dict[int, cst.Arg] = {}
    for name, arg in legacy:
        if arg.keyword is None and len(positional) > 1:
            return None  # a keyword cannot stand before the positional arguments that follow
        value = arg.value
        if isinstance(value, cst.Name) and value.value == "False":
            code = "None"
        else:
            spelled = _spell_weights(facts, scope, table.get(name, ""))
            if spelled is None:
                return None
            code, needs = spelled
            imports += needs
            if not (isinstance(value, cst.Name) and value.value == "True"):
                code = f"{code} if {facts.module.code_for_node(value)} else None"
        replaced[id(arg)] = arg.with_changes(
            keyword=cst.Name(LEGACY[name]),
            value=cst.parse_expression(code),
            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
        )
    fixed = node.with_changes(args=[replaced.get(id(a), a) for a in node.args])
    return Fix(
        "Pass weights= instead of pretrained=", (NodeEdit(node, render(facts.module, node, fixed)),), imports=tuple(dict.fromkeys(imports))
    )


def _spell_weights(facts: ModuleFacts, scope: Scope, where: str) -> tuple[str, list[tuple[str, str | None]]] | None:
    """``torchvision.models:ResNet50_Weights.IMAGENET1K_V1`` as code here: the enum's own name,
    imported from its package when the name is free, else through a module already imported."""
    if not where:
        return None
    package, _, member = where.partition(":")
    enum = member.split(".")[0]
    qualified = f"{package}.{enum}"
    bound = facts.resolve_name(enum, scope)
    if bound == qualified:
        return member, []
    s: Scope | None = scope
    free = True
    while s is not None:
        free = free and enum not in s.imports and enum not in s.bound and not s.star_imports
        s = s.parent
    if free:
        return member, [(package, enum)]
    spelled = spell(facts, scope, qualified)
    if spelled is None:
        return None
    return f"{spelled[0]}.{member.split('.', 1)[1]}", list(spelled[1])
