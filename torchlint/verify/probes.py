"""One probe per rule: run the flagged module and show the finding's behaviour, or its absence.

``verify_finding`` is the entry point (the worker calls it once per finding). A probe returns
``(verdict, evidence)``: "confirmed" only with evidence specific to the finding, "refuted" when the
behaviour did not happen, "inconclusive" otherwise, with the reason.
"""

from __future__ import annotations

import ast
import copy
import inspect
import operator
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from torchlint.verify import stubs, tracing
from torchlint.verify.build import (
    IDENTITY_STANDIN,
    NO_INPUT,
    BuildError,
    builds,
    candidate_inputs,
    check_candidate,
    pick_input,
    tensors_in,
)
from torchlint.verify.tracing import LineTrace, lines_that_count

Verdict = tuple[str, str]
NO_PROBE: Verdict = ("inconclusive", "no probe for this rule")


def verify_finding(namespace: dict, finding: dict, path: str, device: str) -> Verdict:
    """The verdict and evidence for one finding; never raises. A verdict other than inconclusive
    needs the flagged line to have run (while the module was built, or with the probe's input).
    When a built module takes no input, or the flagged line did not run, the next way of building
    it is tried (other sizes, boolean options flipped)."""
    probe = PROBES.get(finding.get("code", ""))
    if probe is None:
        return NO_PROBE
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError) as error:
        return "inconclusive", f"cannot read the file: {_first_line(error)}"
    counted = lines_that_count(tree, finding["line"])
    method = _enclosing_method(tree, finding["line"])
    trace = LineTrace(path)
    no_input: list[str] = []
    fallback: Verdict | None = None
    missed = False
    try:
        with trace, _RecordBuildLines(path):
            for as_forward in (None, method):
                if as_forward is not None and not missed:
                    break
                for attempt, (module, how) in enumerate(build_flagged(namespace, finding, tree, path)):
                    if as_forward is not None:
                        module.forward = getattr(module, as_forward)
                        how = f"{how}, its {as_forward}() called as forward"
                    module.to(device)
                    trace.built_now()
                    try:
                        verdict, evidence = probe(module, finding, path, device)
                    except BuildError as error:
                        if not str(error).startswith(NO_INPUT):
                            raise
                        no_input.append(str(error))
                        trace.rebuild()
                        continue
                    if verdict == "refuted" and IDENTITY_STANDIN in how:
                        fallback = fallback or ("inconclusive", f"refuted only when built as {how}, with nn.Identity "
                                                f"standing in for a layer argument: {evidence}")
                        trace.rebuild()
                        continue
                    if counted is None or trace.covers(counted):
                        used = [f"input: {trace.input}"] if trace.input and trace.input not in evidence else []
                        if attempt or as_forward or IDENTITY_STANDIN in how or "<config:" in how:
                            used.append(f"built as {how}")
                        return verdict, f"{evidence} ({'; '.join(used)})" if used else evidence
                    missed = True
                    if trace.input is None:
                        fallback = fallback or ("inconclusive", f"line {finding['line']} did not run when {how} was built")
                    else:
                        fallback = fallback or ("inconclusive", f"line {finding['line']} did not run with input {trace.input} ({how})")
                    trace.rebuild()
    except BuildError as error:
        return fallback or ("inconclusive", f"could not build the module: {error}")
    except stubs.StubUsed as error:
        return fallback or ("inconclusive", stubs.describe(error))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - user code may raise anything
        return fallback or ("inconclusive", f"the probe failed: {_first_line(error)}")
    if fallback:
        return fallback
    return "inconclusive", f"could not build the module: {no_input[0] if no_input else 'no module was built'}"


def _enclosing_method(tree: ast.Module, line: int) -> str | None:
    """The name of the method (not ``forward`` or ``__init__``) of a class whose body holds
    ``line`` and that takes an input: forward may not call it, the probe then calls it instead."""
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if (isinstance(item, ast.FunctionDef) and item.body[0].lineno <= line <= (item.end_lineno or item.lineno)
                        and item.name not in ("forward", "__init__") and len(item.args.args) >= 2
                        and not item.decorator_list):
                    found = item.name
    return found


def build_flagged(namespace: dict, finding: dict, tree: ast.Module, path: str) -> Iterator[tuple[nn.Module, str]]:
    """The modules the finding may be about, and how each was built: instances of the innermost
    nn.Module class holding the line, else the modules a top-level factory function holding it
    returns, else the module a top-level ``name = SomeModule(...)`` statement holding it builds."""
    line = finding["line"]
    cls = find_class(namespace, finding, path)
    if cls is not None:
        return builds(cls, path, skip_self=True)
    for node in tree.body:
        if not (_start(node) <= line <= (node.end_lineno or node.lineno)):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and callable(namespace.get(node.name)):
            return builds(namespace[node.name], path)
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr)) and isinstance(value, ast.Call):
            callee = _evaluate(value.func, namespace)
            if isinstance(callee, type) and issubclass(callee, nn.Module):
                built = eval(compile(ast.Expression(value), path, "eval"), namespace)  # noqa: S307 - the flagged statement
                return iter([(built, f"the expression at line {node.lineno}")])
            raise BuildError(f"line {line} is in a top-level statement that does not build an nn.Module class")
    raise BuildError(f"no nn.Module class, module-building function or expression in the file contains line {line}")


def find_class(namespace: dict, finding: dict, path: str) -> type | None:
    """The innermost nn.Module class of ``namespace`` whose source span in ``path`` holds the line.
    StubUsed when that class derives from a class of a missing module (not a stand-in)."""
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    line = finding["line"]
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            start = _start(node)
            if start <= line <= (node.end_lineno or node.lineno):
                spans.append((start, node.name))
    for _start_line, name in sorted(spans, reverse=True):
        value = namespace.get(name)
        base = stubs.stub_base_of(value) if isinstance(value, type) else None
        if base:
            raise stubs.StubUsed(base, f"is the base class of {name}")
        if isinstance(value, type) and issubclass(value, nn.Module):
            return value
    return None


def _evaluate(node: ast.expr, namespace: dict) -> object:
    """The value of a dotted name in ``namespace``, or None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_evaluate(node.value, namespace), node.attr, None)
    return None


def _start(node: ast.stmt) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def probe_dropout_in_eval(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL201/TL202/TL204: in eval(), record each dropout-family call with its training flag and rate.
    For F.alpha_dropout without training= (TL201's "defaults to False"), the opposite: in train()
    the call ran with training=False."""
    never_on = "defaults to False" in finding.get("message", "")
    module.train(never_on)
    candidate, _ = pick_input(module, device)
    recorder = _DropoutRecorder(path, finding["line"], finding.get("end_line") or finding["line"])
    torch.manual_seed(0)
    with torch.no_grad(), recorder:
        module(*candidate.make(2))
    mine = [call for call in recorder.calls if call.at_flagged_line]
    if never_on:
        idle = [call for call in mine if not call.training and call.rate > 0]
        if idle:
            return "confirmed", (
                f"{idle[0].shown} ran with training=False (p={idle[0].rate:g}) while the module was in "
                f"train(), at line {idle[0].line}: it drops nothing, in training either"
            )
        if mine:
            return "refuted", f"{mine[0].shown} at line {mine[0].line} ran with training=True in train()"
        return "inconclusive", f"forward on {candidate.describe} did not reach line {finding['line']}"
    live = [call for call in mine if call.training and call.rate > 0]
    if live:
        call = live[0]
        flag = "training=True" if call.name != "scaled_dot_product_attention" else "dropout active"
        return "confirmed", (
            f"{call.shown} ran with {flag} (p={call.rate:g}) while the module was in eval(), "
            f"at line {call.line}"
        )
    if mine:
        call = mine[0]
        return "refuted", (
            f"{call.shown} at line {call.line} ran with training={call.training} (p={call.rate:g}) in eval(): "
            f"it dropped nothing"
        )
    return "inconclusive", f"forward on {candidate.describe} did not reach line {finding['line']}"


def probe_unregistered(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL101/TL102/TL103: the attribute is absent from parameters(), buffers() and state_dict()."""
    name = _attribute_name(finding, path)
    if name is None:
        return "inconclusive", "could not tell which attribute the finding is about"
    shown = f"self.{name}"
    for kind, table in (("parameter", module._parameters), ("buffer", module._buffers),
                        ("submodule", module._modules)):
        if name in table and table[name] is not None:
            if finding["code"] == "TL103" and _converts_on_line(finding, path):
                return "inconclusive", (
                    f"{shown} is a registered {kind} here, but only because the conversion on line "
                    f"{finding['line']} was a no-op on this device; on another device it would not be"
                )
            return "refuted", f"{shown} is registered as a {kind}"
    if name not in vars(module):
        return "inconclusive", f"{shown} does not exist on the built module"
    value = vars(module)[name]
    tensors = _held_tensors(value)
    if not tensors:
        return "inconclusive", f"{shown} holds no tensor, layer or Parameter"
    registered = {id(t) for t in module.parameters()} | {id(t) for t in module.buffers()}
    state_ids = {id(t) for t in module.state_dict(keep_vars=True).values()}
    if any(id(t) in registered or id(t) in state_ids for t in tensors):
        return "refuted", f"{shown}'s tensors are reachable through parameters(), buffers() or state_dict()"
    what = _describe_held(value, tensors)
    evidence = (f"{shown} ({what}) is not in parameters(), buffers() or state_dict(): the optimizer "
                f"never sees it and it is not saved")
    return "confirmed", evidence + _device_evidence(module, tensors)


def probe_residual_without_skip(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL301/TL302: no path from the input reaches the output without passing a layer with weights
    (fx; normalization layers and weight-free operations pass it), else zeroed parameters."""
    module.eval()
    if not any(True for _ in module.parameters()):
        return "inconclusive", "the module built has no layer with weights: nothing in it is a body to skip"
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:  # noqa: BLE001 - not traceable: fall back to running it
        graph = None
    if graph is not None:
        carried, join = _identity_path(graph, module)
        if not carried:
            return "confirmed", (
                "in the traced graph every path from the input to the output passes a layer with weights: "
                "no path from the input reaches the output except through the body"
            )
        where = f" at `{join}`" if join else ""
        return "refuted", f"the traced graph joins the input to the body's output{where}"
    return _zeroed_parameters_check(module, device)


def probe_unused_skip(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL302: the tensor the flagged line saves, replaced by noise right after the line runs, does
    not change the output (in eval() and in train()). When that cannot be done, as TL301."""
    names = _assigned_names(path, finding["line"])
    trace = tracing.current()
    if not names or trace is None:
        return probe_residual_without_skip(module, finding, path, device)
    candidate, _ = pick_input(module, device)
    span = _statement_span(path, finding["line"])
    changed: list[str] = []
    for mode in ("eval", "train"):
        probed = module if mode == "eval" else copy.deepcopy(module)
        probed.train(mode == "train")
        perturb = _Perturb(names, span)
        outputs = _runs_with_hook(probed, lambda: candidate.make(2), trace, perturb)
        if not _same(outputs[0], outputs[1]):
            return "inconclusive", f"forward in {mode}() gives a different output each time on {candidate.describe}"
        if not perturb.replaced:
            return "inconclusive", f"the value line {finding['line']} saves in {', '.join(names)} is not a tensor"
        if not _same(outputs[0], outputs[2]):
            changed.append(mode)
    shown = ", ".join(names)
    if changed:
        return "refuted", f"replacing {shown} by noise right after line {finding['line']} changes the output in {changed[0]}(): it is used"
    return "confirmed", (
        f"replacing {shown} by noise right after line {finding['line']} leaves the output unchanged in eval() "
        f"and train(): the saved tensor never reaches the output"
    )


def _runs_with_hook(module: nn.Module, make_inputs: Callable[[], tuple], trace: LineTrace, hook) -> list[list[torch.Tensor]]:
    """The outputs of three forwards on the same input: twice with ``hook`` inactive (to tell a
    forward that varies), once active. ``hook`` runs at every line of the user's file."""
    outputs = []
    for active in (False, False, True):
        hook.active = active
        trace.after_line = hook
        torch.manual_seed(0)
        try:
            with torch.no_grad():
                outputs.append(list(tensors_in(module(*make_inputs()))))
        finally:
            trace.after_line = None
    return outputs


class _Perturb:
    """A LineTrace hook: right after the statement ``span`` runs, replace the tensors it bound to
    ``names`` in that frame by noise of the same shape (when ``active``)."""

    def __init__(self, names: list[str], span: range):
        self.names, self.span = names, span
        self.pending: set[int] = set()
        self.active = False
        self.replaced = 0

    def __call__(self, frame, line: int) -> None:
        key = id(frame)
        if key in self.pending and line not in self.span:
            self.pending.discard(key)
            for name in self.names:
                value = frame.f_locals.get(name)
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    self.replaced += 1
                    if self.active:
                        frame.f_locals[name] = value + torch.randn_like(value)
        if line == self.span.start:
            self.pending.add(key)


class _SeparateLocals:
    """A LineTrace hook: right before ``line`` runs, each local tensor of that frame that shares
    its storage with another local gets its own copy (when ``active``); ``aliased`` names them."""

    def __init__(self, line: int):
        self.line = line
        self.active = False
        self.aliased: set[str] = set()

    def __call__(self, frame, line: int) -> None:
        if line != self.line:
            return
        tensors = {name: value for name, value in frame.f_locals.items() if isinstance(value, torch.Tensor)}
        storages: dict[int, list[str]] = {}
        for name, value in tensors.items():
            storages.setdefault(value.untyped_storage().data_ptr(), []).append(name)
        shared = [name for names in storages.values() if len(names) > 1 for name in names]
        self.aliased.update(shared)
        if self.active:
            for name in shared:
                frame.f_locals[name] = tensors[name].clone()


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def _assigned_names(path: str, line: int) -> list[str]:
    """The plain names the statement at ``line`` assigns (``identity = x``, ``a, b = ...``)."""
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.lineno <= line <= (node.end_lineno or node.lineno):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            return list(dict.fromkeys(names))
    return []


def _statement_span(path: str, line: int) -> range:
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.lineno <= line <= (node.end_lineno or node.lineno):
            return range(node.lineno, (node.end_lineno or node.lineno) + 1)
    return range(line, line + 1)


def probe_shape_error(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL304: forward raises a shape error whose innermost frame in the user's file is the flagged
    line, or inside the layer built at the flagged position. When forward fails before reaching
    it, the ``nn.Sequential`` that holds that layer is run on its own."""
    module.eval()
    verdict = _shape_error_run(module, finding, path, device)
    if verdict[0] != "inconclusive":
        return verdict
    position = (finding["line"], finding["column"])
    holder = next((m for m in module.modules() if isinstance(m, nn.Sequential) and m is not module
                   and any(_BUILT_AT.get(id(child)) == position for child in m.children())), None)
    if holder is None:
        return verdict
    name = next(n for n, m in module.named_modules() if m is holder)
    alone = _shape_error_run(holder, finding, path, device)
    if alone[0] == "inconclusive":
        return verdict
    return alone[0], f"{name} ({type(holder).__name__}) run on its own: {alone[1]}"


def _shape_error_run(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    lines = range(finding["line"], (finding.get("end_line") or finding["line"]) + 1)
    hit = other = None
    for candidate in candidate_inputs(module, device):
        torch.manual_seed(0)
        try:
            with torch.no_grad(), _LayerStack(module) as stack:
                module(*candidate.make(2))
        except Exception as error:  # noqa: BLE001
            line = _innermost_line(error, path)
            built_at = _BUILT_AT.get(id(stack.raising)) if stack.raising is not None else None
            if _is_shape_error(error) and line in lines:
                hit = hit or (candidate, error, f"at line {finding['line']}")
            elif _is_shape_error(error) and built_at == (finding["line"], finding["column"]):
                hit = hit or (candidate, error, f"in the {type(stack.raising).__name__} built at line {finding['line']}")
            else:
                other = other or (candidate, error, line)
            continue
        if check_candidate(module, candidate)[0]:
            return "refuted", f"forward ran without error on {candidate.describe}"
    if hit:
        candidate, error, where = hit
        return "confirmed", f"forward on {candidate.describe} raised {where}: {_first_line(error)}"
    if other:
        candidate, error, line = other
        where = f"at line {line}" if line else "outside the file"
        return "inconclusive", f"forward on {candidate.describe} failed {where}, not at the flagged line: {_first_line(error)}"
    return "inconclusive", "no input ran through forward"


def probe_inplace_clobbers(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL401: backward fails on autograd's in-place check; else the output changes when, right
    before the flagged line runs, each local tensor gets its own copy (the in-place operation then
    cannot reach the tensor kept under another name); else when every inplace flag is turned off."""
    module.eval()
    candidate, _ = pick_input(module, device)
    torch.manual_seed(0)
    inputs = candidate.make(2)
    flagged = [m for m in module.modules() if getattr(m, "inplace", None) is True]
    version_error = _version_counter_error(module, inputs)
    if version_error:
        return "confirmed", f"backward fails: {version_error}"
    trace = tracing.current()
    if trace is not None:
        separate = _SeparateLocals(finding["line"])
        outputs = _runs_with_hook(module, lambda: tuple(t.clone() for t in inputs), trace, separate)
        if separate.aliased and _same(outputs[0], outputs[1]):
            names = ", ".join(sorted(separate.aliased))
            if not _same(outputs[0], outputs[2]):
                return "confirmed", (f"giving {names} separate copies right before line {finding['line']} changes the "
                                     f"output: the in-place operation there modified a tensor kept under another name")
            return "refuted", (f"giving {names} separate copies right before line {finding['line']} leaves the output "
                               f"unchanged: the in-place operation there modified nothing kept for later")
    if not flagged:
        return "inconclusive", "no layer has inplace=True; the in-place operation is not a flag to turn off"
    lines = range(finding["line"], (finding.get("end_line") or finding["line"]) + 1)
    called_at: set[int | None] = set()
    handles = [m.register_forward_pre_hook(lambda layer, args: called_at.add(_caller_line(os.path.realpath(path))))
               for m in flagged]
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            module(*(t.clone() for t in inputs))
    finally:
        for handle in handles:
            handle.remove()
    if not any(line in lines for line in called_at):
        return "inconclusive", (f"no layer with inplace=True runs at line {finding['line']}: its in-place operation "
                                f"is not a flag to turn off")
    outplace = copy.deepcopy(module)
    for sub in outplace.modules():
        if getattr(sub, "inplace", None) is True:
            sub.inplace = False
    with torch.no_grad():
        torch.manual_seed(0)
        before = list(tensors_in(module(*(t.clone() for t in inputs))))
        torch.manual_seed(0)
        after = list(tensors_in(outplace(*(t.clone() for t in inputs))))
    names = ", ".join(sorted({type(m).__name__ for m in flagged}))
    if len(before) != len(after) or any(not torch.equal(a, b) for a, b in zip(before, after)):
        return "confirmed", (
            f"turning off inplace=True ({names}) changes the output: the in-place layer modified the "
            f"tensor kept for later"
        )
    return "refuted", f"turning off inplace=True ({names}) leaves the output unchanged"


def probe_layer_in_forward(module: nn.Module, finding: dict, path: str, device: str) -> Verdict:
    """TL105: two eval forwards on the same input differ, and the layer is built during forward."""
    module.eval()
    layer = _constructed_class(finding["message"])
    candidate, _ = pick_input(module, device)
    torch.manual_seed(0)
    inputs = candidate.make(2)
    built: list[str] = []
    original_init = nn.Module.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        original_init(self, *args, **kwargs)

    nn.Module.__init__ = counting_init
    try:
        with torch.no_grad():
            first = list(tensors_in(module(*inputs)))
            second = list(tensors_in(module(*inputs)))
    finally:
        nn.Module.__init__ = original_init
    differ = len(first) != len(second) or any(not torch.equal(a, b) for a, b in zip(first, second))
    if not differ:
        return "refuted", "two eval() forwards on the same input give the same output"
    if layer and layer in built:
        count = built.count(layer) // 2
        return "confirmed", (
            f"two eval() forwards on the same input give different outputs: each call builds "
            f"{count} new {layer} with fresh random weights"
        )
    return "inconclusive", "two eval() forwards differ, but the flagged layer was not built during forward"


PROBES: dict[str, Callable[[nn.Module, dict, str, str], Verdict]] = {
    "TL101": probe_unregistered,
    "TL102": probe_unregistered,
    "TL103": probe_unregistered,
    "TL105": probe_layer_in_forward,
    "TL201": probe_dropout_in_eval,
    "TL202": probe_dropout_in_eval,
    "TL204": probe_dropout_in_eval,
    "TL301": probe_residual_without_skip,
    "TL302": probe_unused_skip,
    "TL304": probe_shape_error,
    "TL401": probe_inplace_clobbers,
}

_DROPOUTS: dict[Callable, str] = {
    F.dropout: "F.dropout", F.dropout1d: "F.dropout1d", F.dropout2d: "F.dropout2d",
    F.dropout3d: "F.dropout3d", F.alpha_dropout: "F.alpha_dropout",
    F.feature_alpha_dropout: "F.feature_alpha_dropout",
    F.scaled_dot_product_attention: "F.scaled_dot_product_attention",
}


class _DropoutCall:
    def __init__(self, name: str, training: bool, rate: float, line: int | None, at_flagged_line: bool):
        self.name = name.removeprefix("F.")
        self.shown = name
        self.training = training
        self.rate = rate
        self.line = line
        self.at_flagged_line = at_flagged_line


class _DropoutRecorder(TorchFunctionMode):
    """Records each dropout-family call, its training flag and rate, and the user-file line it came from."""

    def __init__(self, path: str, first_line: int, last_line: int):
        super().__init__()
        self.path = os.path.realpath(path)
        self.lines = range(first_line, last_line + 1)
        self.calls: list[_DropoutCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _DROPOUTS.get(func)
        if name is not None:
            training, rate = _dropout_state(func, name, args, kwargs)
            line = _caller_line(self.path)
            self.calls.append(_DropoutCall(name, training, rate, line, line in self.lines))
        return func(*args, **kwargs)


def _dropout_state(func: Callable, name: str, args: tuple, kwargs: dict) -> tuple[bool, float]:
    """(training, rate) of a dropout-family call, with the function's own defaults."""
    if name == "F.scaled_dot_product_attention":
        rate = float(kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0))
        return rate > 0, rate
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return bool(bound.arguments["training"]), float(bound.arguments["p"])


def _caller_line(path: str) -> int | None:
    frame = sys._getframe(1)
    while frame is not None:
        if os.path.realpath(frame.f_code.co_filename) == path:
            return frame.f_lineno
        frame = frame.f_back
    return None


def _attribute_name(finding: dict, path: str) -> str | None:
    match = re.search(r"\bself\.(\w+)", finding.get("message", ""))
    if match:
        return match.group(1)
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno == finding["line"]:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                    return target.attr
    return None


def _converts_on_line(finding: dict, path: str) -> bool:
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    text = " ".join(lines[finding["line"] - 1:(finding.get("end_line") or finding["line"])])
    return bool(re.search(r"\.(to|cuda|cpu|type|float|double|half|bfloat16)\(", text))


def _held_tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, nn.Module):
        return list(value.parameters()) + list(value.buffers())
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else []
    found: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, (torch.Tensor, nn.Module)):
            found.extend(_held_tensors(item))
    return found


def _describe_held(value: object, tensors: list[torch.Tensor]) -> str:
    if isinstance(value, torch.Tensor):
        kind = "a non-leaf tensor" if value.grad_fn is not None else "a plain tensor"
        if isinstance(value, nn.Parameter):
            kind = "a Parameter"
        return f"{kind} of shape {tuple(value.shape)}"
    kind = type(value).__name__
    layers = [v for v in (value.values() if isinstance(value, dict) else value) if isinstance(v, nn.Module)]
    if layers:
        return f"a {kind} of {len(layers)} layers with {len(tensors)} tensors"
    return f"a {kind} of {len(tensors)} tensors"


def _device_evidence(module: nn.Module, tensors: list[torch.Tensor]) -> str:
    """What a GPU user meets: after module.to(another device) the attribute has not moved."""
    target = "meta"
    start = tensors[0].device
    if start.type == target:
        return ""
    try:
        module.to(target)
    except Exception:  # noqa: BLE001
        return ""
    if all(t.device == start for t in tensors):
        return f"; after .to('{target}') it is still on {start.type}: a GPU run fails with a device mismatch"
    return ""


def _identity_path(graph: torch.fx.Graph, module: nn.Module) -> tuple[bool, str | None]:
    """Whether the output carries the input along a path that passes no layer with weights
    (a normalization layer passes it), and the first join (add, cat, ...) where such a path meets
    another, as text."""
    carries: dict[torch.fx.Node, bool] = {}
    first = next(iter(graph.nodes), None)
    join = None
    for node in graph.nodes:
        if node.op == "placeholder":
            carries[node] = node is first
            continue
        if node.op == "output":
            return any(carries.get(a) for a in node.all_input_nodes), join
        carries[node] = (not _is_metadata(node) and not _has_weights(node, module)
                         and any(carries.get(a) for a in node.all_input_nodes))
        if join is None and carries[node] and _is_join(node) and len(node.all_input_nodes) >= 2:
            join = _show_node(node)
    return False, join


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
          *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
_WEIGHTED_FUNCTIONS = {F.linear, F.bilinear, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
                       F.conv_transpose3d, torch.matmul, torch.mm, torch.bmm, torch.einsum, operator.matmul}


def _has_weights(node: torch.fx.Node, module: nn.Module) -> bool:
    """A call of a submodule with parameters (not a normalization layer), or of a linear or
    convolution function on a parameter of the module."""
    if node.op == "call_module":
        layer = module.get_submodule(node.target)
        return not isinstance(layer, _NORMS) and any(True for _ in layer.parameters())
    if node.op == "call_function" and node.target in _WEIGHTED_FUNCTIONS:
        return any(a.op == "get_attr" for a in node.all_input_nodes)
    return False


_JOIN_FUNCTIONS = {operator.add, operator.iadd, torch.add, torch.cat, torch.concat, torch.stack}
_JOIN_METHODS = {"add", "add_", "__add__", "__radd__", "__iadd__"}
_METADATA_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"}
_METADATA_METHODS = {"size", "dim", "numel", "type", "get_device", "is_contiguous"}


def _is_join(node: torch.fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in _JOIN_FUNCTIONS
    return node.op == "call_method" and node.target in _JOIN_METHODS


def _is_metadata(node: torch.fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _METADATA_METHODS
    if node.op == "call_function":
        if node.target is getattr and len(node.args) > 1 and node.args[1] in _METADATA_ATTRS:
            return True
        return node.target is len
    return False


def _show_node(node: torch.fx.Node) -> str:
    target = node.target
    if node.op == "call_function":
        name = {operator.add: "+", operator.iadd: "+=", operator.mul: "*"}.get(target, getattr(target, "__name__", str(target)))
    else:
        name = str(target)
    return f"{name} ({node.name})"


def _zeroed_parameters_check(module: nn.Module, device: str) -> Verdict:
    candidate, _ = pick_input(module, device)
    zeroed = copy.deepcopy(module).eval()
    kept = {id(p) for layer in zeroed.modules() if isinstance(layer, _NORMS) for p in layer.parameters()}
    with torch.no_grad():
        for parameter in zeroed.parameters():
            if id(parameter) not in kept:
                parameter.zero_()
        torch.manual_seed(0)
        first = list(tensors_in(zeroed(*candidate.make(2))))
        torch.manual_seed(1)
        second = list(tensors_in(zeroed(*candidate.make(2))))
    if not first or len(first) != len(second):
        return "inconclusive", "not traceable, and the zeroed-parameter outputs cannot be compared"
    if all(torch.equal(a, b) for a, b in zip(first, second)):
        return "confirmed", (
            "with every parameter zeroed the output no longer depends on the input: no path from the "
            "input reaches the output except through the body"
        )
    return "refuted", "with every parameter zeroed the output still depends on the input: a path bypasses the body"


def _version_counter_error(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """Autograd's in-place error text when backward through the forward fails on it, else None."""
    leaves = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    probe_copy = copy.deepcopy(module)
    try:
        outputs = [t for t in tensors_in(probe_copy(*(t.clone() if t.requires_grad else t for t in leaves)))
                   if t.requires_grad]
        if outputs:
            sum(o.float().sum() for o in outputs).backward()
    except RuntimeError as error:
        if "modified by an inplace operation" in str(error):
            return str(error).splitlines()[0]
    except Exception:  # noqa: BLE001
        return None
    return None


def _constructed_class(message: str) -> str | None:
    match = re.match(r"\s*([\w.]+)\(", message)
    return match.group(1).rsplit(".", 1)[-1] if match else None


# id of each module built while a finding was probed -> (line, 1-based column) of the call that built it
_BUILT_AT: dict[int, tuple[int, int]] = {}


def _caller_position(path: str) -> tuple[int, int] | None:
    """Where the innermost frame of ``path`` is: the line and 1-based column of the expression it runs."""
    frame = sys._getframe(1)
    while frame is not None:
        if os.path.realpath(frame.f_code.co_filename) == path:
            for index, (line, _end, column, _end_column) in enumerate(frame.f_code.co_positions()):
                if index == frame.f_lasti // 2:
                    return (line, column + 1) if line is not None and column is not None else None
            return None
        frame = frame.f_back
    return None


class _RecordBuildLines:
    """While active, note for each nn.Module built the line of the user's file that built it."""

    def __init__(self, path: str):
        self.path = os.path.realpath(path)

    def __enter__(self) -> None:
        _BUILT_AT.clear()
        self.original = original = nn.Module.__init__
        path = self.path

        def recording_init(module, *args, **kwargs):
            if id(module) not in _BUILT_AT:
                position = _caller_position(path)
                if position is not None:
                    _BUILT_AT[id(module)] = position
            original(module, *args, **kwargs)

        nn.Module.__init__ = recording_init

    def __exit__(self, *exc) -> None:
        nn.Module.__init__ = self.original


class _LayerStack:
    """Forward hooks on every submodule: ``raising`` is the innermost one whose forward did not return."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.stack: list[nn.Module] = []
        self.raising: nn.Module | None = None

    def __enter__(self) -> _LayerStack:
        self.handles = []
        for sub in self.module.modules():
            self.handles.append(sub.register_forward_pre_hook(self._enter))
            self.handles.append(sub.register_forward_hook(self._leave))
        return self

    def _enter(self, layer: nn.Module, args: tuple) -> None:
        self.stack.append(layer)

    def _leave(self, layer: nn.Module, args: tuple, output: object) -> None:
        self.stack.pop()

    def __exit__(self, kind, error, tb) -> None:
        for handle in self.handles:
            handle.remove()
        if error is not None and self.stack:
            self.raising = self.stack[-1]


def _innermost_line(error: BaseException, path: str) -> int | None:
    real = os.path.realpath(path)
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if os.path.realpath(frame.filename) == real:
            line = frame.lineno
    return line


_SHAPE_WORDS = re.compile(r"size|shape|mat1|mat2|dimension|broadcast|expected input|should contain \d+ elements",
                          re.IGNORECASE)


def _is_shape_error(error: BaseException) -> bool:
    return isinstance(error, (RuntimeError, ValueError, IndexError)) and bool(_SHAPE_WORDS.search(str(error)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
