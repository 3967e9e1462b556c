"""TL306 bias-before-norm: a Conv/Linear bias that the BatchNorm right after it cancels."""

from __future__ import annotations

from functools import partial

from collections.abc import Iterator

import libcst as cst

from torchlint.edits import render, with_keyword
from torchlint.facts import ClassInfo, FunctionInfo, ModuleFacts, find_arg, self_attr
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo
from torchlint.shapes import BATCH_NORMS, CONVS, INSTANCE_NORMS, Layer, ShapeModel

_BATCH_NORMS = BATCH_NORMS | {f"LazyBatchNorm{n}d" for n in (1, 2, 3)}
_INSTANCE_NORMS = INSTANCE_NORMS | {f"LazyInstanceNorm{n}d" for n in (1, 2, 3)}
_CONVS = CONVS | {f"LazyConv{n}d" for n in (1, 2, 3)} | {f"LazyConvTranspose{n}d" for n in (1, 2, 3)}
_LINEARS = {"Linear", "LazyLinear"}


def cancels_bias(layer: Layer, norm: Layer) -> str | None:
    """What in ``norm`` removes ``layer``'s per-channel bias, or None when it does not.

    Batch norm subtracts each channel's mean over the batch (and positions); instance norm, and
    group norm with one channel per group, each channel's mean over the positions: a constant
    added per channel is gone either way. LayerNorm and GroupNorm with wider groups subtract a
    mean across channels, which removes only the bias's average, not the bias."""
    if norm.kind in _BATCH_NORMS:
        return "per-channel batch mean"
    if layer.kind in _CONVS and norm.kind in _INSTANCE_NORMS:
        return "per-channel instance mean"
    if layer.kind in _CONVS and norm.kind == "GroupNorm":
        groups = _group_count(norm)
        if groups is not None and groups == norm.in_size:
            return "per-channel mean (one channel per group)"
    return None


def _group_count(norm: Layer) -> int | None:
    arg = norm.node.args[0] if norm.node.args else None
    if arg is not None and arg.keyword is None and isinstance(arg.value, cst.Integer):
        return int(arg.value.evaluated_value)
    for a in norm.node.args:
        if a.keyword and a.keyword.value == "num_groups" and isinstance(a.value, cst.Integer):
            return int(a.value.evaluated_value)
    return None


class BiasBeforeNorm(Rule):
    code = "TL306"
    name = "bias-before-norm"
    summary = "Conv/Linear with a bias feeding straight into BatchNorm: the bias is cancelled, dead weight"
    needles = ("Norm",)
    default_enabled = False
    off_reason = "34 of 34 corpus findings were true dead biases, none worth changing: checkpoints carry the bias keys"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A torch.nn convolution or linear layer and a norm that can cancel its bias (a layer's
        kind is the last part of its torch.nn name, which the file spells)."""
        return info.spells(_CONVS | _LINEARS) and info.spells(_BATCH_NORMS | _INSTANCE_NORMS | {"GroupNorm"})

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        model = ShapeModel(facts)
        seen: set[int] = set()
        for layer, norm, cls in (*_in_sequences(model), *_in_methods(facts, model)):
            removed = cancels_bias(layer, norm) if layer.bias and (layer.kind in _CONVS or layer.kind in _LINEARS) else None
            if removed and id(layer.node) not in seen:
                seen.add(id(layer.node))
                yield Hit(
                    layer.node,
                    f"{layer.label} has a bias, but it feeds straight into {norm.label}, which "
                    f"subtracts the {removed}: the bias cancels out and is a wasted parameter (the "
                    "output is the same without it); pass bias=False",
                    cls,
                    _fix(facts, layer),
                )


def _fix(facts: ModuleFacts, layer: Layer) -> Fix:
    """``bias=False`` added to the constructor, or put in place of its ``True``."""
    position = {"Linear": 2, "LazyLinear": 1}.get(layer.kind, 6 if layer.kind.startswith("Lazy") else 7)
    bias, _ = find_arg(layer.node, "bias", position)
    if bias is not None:
        edit = NodeEdit(bias.value, "False")
    else:
        edit = NodeEdit(layer.node, partial(render, facts.module, layer.node, with_keyword(layer.node, "bias", "False")))
    return Fix("Pass bias=False", (edit,), safe=False)


def _in_sequences(model: ShapeModel) -> Iterator[tuple[Layer, Layer, ClassInfo | None]]:
    """Consecutive elements of a Sequential (a local name counts only if read there alone)."""
    for run, fn in model.layer_runs():
        for first, second in zip(run, run[1:]):
            if first is None or second is None:
                continue
            if isinstance(first, cst.Name) and (fn is None or len(fn.reads.get(first.value, [])) != 1):
                continue
            layer, norm = model.layer(first, fn), model.layer(second, fn)
            if layer is not None and norm is not None:
                yield layer, norm, fn.cls if fn else None


def _in_methods(facts: ModuleFacts, model: ShapeModel) -> Iterator[tuple[Layer, Layer, ClassInfo]]:
    """``self.bn(self.conv(x))``, or ``y = self.conv(x)`` with the next statement ``self.bn(y)``,
    where ``self.conv`` is called nowhere else."""
    for cls in facts.module_classes():
        relatives = facts.family(cls)
        layers = model.attr_layers(relatives)
        if not layers:
            continue
        calls = _attr_call_counts(relatives)
        for fn in cls.methods.values():
            instance = fn.instance
            if not instance:
                continue
            for conv, norm in _pairs(fn, instance):
                if conv in layers and norm in layers and calls.get(conv) == 1:
                    yield layers[conv][0], layers[norm][0], cls


def _attr_call_counts(relatives: list[ClassInfo]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cls in relatives:
        for call in cls.self_calls:
            func = call.node.func
            if isinstance(func, cst.Attribute):
                counts[func.attr.value] = counts.get(func.attr.value, 0) + 1
    return counts


def _pairs(fn: FunctionInfo, instance: str) -> Iterator[tuple[str, str]]:
    """(first, second) attribute names where ``self.<second>`` takes ``self.<first>``'s output."""
    for call in fn.calls:
        inner = _single_arg(call.node)
        outer_attr = self_attr(call.node.func, instance)
        if outer_attr and isinstance(inner, cst.Call):
            inner_attr = self_attr(inner.func, instance)
            if inner_attr:
                yield inner_attr, outer_attr
    yield from _consecutive(fn, fn.node.body, instance)


def _consecutive(fn: FunctionInfo, body: cst.CSTNode, instance: str) -> Iterator[tuple[str, str]]:
    statements = list(getattr(body, "body", ()))
    for stmt in statements:
        for suite in _suites(stmt):
            yield from _consecutive(fn, suite, instance)
    for first, second in zip(statements, statements[1:]):
        produced = _assigned_call(first)
        consumed = _consuming_call(second)
        if not produced or not consumed:
            continue
        name, call = produced
        target, outer = consumed
        arg = _single_arg(outer)
        if not (isinstance(arg, cst.Name) and arg.value == name):
            continue
        if target != name and len(fn.reads.get(name, [])) != 1:
            continue  # the conv output is also used elsewhere, where its bias counts
        first_attr, second_attr = self_attr(call.func, instance), self_attr(outer.func, instance)
        if first_attr and second_attr:
            yield first_attr, second_attr


def _suites(stmt: cst.CSTNode) -> Iterator[cst.BaseSuite]:
    """The blocks of a compound statement (not of a nested function or class)."""
    if not isinstance(stmt, cst.BaseCompoundStatement) or isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return
    yield stmt.body
    orelse = getattr(stmt, "orelse", None)
    if isinstance(orelse, cst.If):
        yield from _suites(orelse)
    elif orelse is not None:
        yield orelse.body
    for handler in getattr(stmt, "handlers", ()):
        yield handler.body
    final = getattr(stmt, "finalbody", None)
    if final is not None:
        yield final.body


def _assigned_call(stmt: cst.CSTNode) -> tuple[str, cst.Call] | None:
    """``name = <call>`` as a statement of its own."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            if isinstance(small.value, cst.Call):
                return small.targets[0].target.value, small.value
    return None


def _consuming_call(stmt: cst.CSTNode) -> tuple[str | None, cst.Call] | None:
    """``target = <call>`` or ``return <call>`` as a statement of its own."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        if isinstance(small, cst.Return) and isinstance(small.value, cst.Call):
            return None, small.value
    found = _assigned_call(stmt)
    return found if found else None


def _single_arg(call: cst.Call) -> cst.BaseExpression | None:
    if len(call.args) == 1 and not call.args[0].keyword and not call.args[0].star:
        return call.args[0].value
    return None
