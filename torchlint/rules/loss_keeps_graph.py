"""TL403 loss-keeps-graph: a loss tensor summed (or appended) across loop iterations without
``.item()``/``.detach()``: the autograd graph of every step stays alive."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from torchlint.edits import render
from torchlint.facts import CallInfo, ModuleFacts, Walker, dotted_name, find_all
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo, ast_nodes

_DETACHING_METHODS = {"item", "detach", "tolist", "numpy", "detach_"}
_DETACHING_FUNCTIONS = {"float", "int", "round", "str", "bool"}
_LOSS_FUNCTIONS = {
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "poisson_nll_loss", "gaussian_nll_loss", "cosine_embedding_loss", "ctc_loss", "hinge_embedding_loss",
    "huber_loss", "l1_loss", "margin_ranking_loss", "mse_loss", "multi_margin_loss",
    "multilabel_margin_loss", "multilabel_soft_margin_loss", "nll_loss", "smooth_l1_loss",
    "soft_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
}
_LOSS_NAME = re.compile(r"(^|_)(criterion|loss|losses|loss_fn|loss_func|lossfn)($|_)|Loss$", re.I)
_NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad"}
_BACKWARD_FUNCTIONS = {"torch.autograd.grad", "torch.autograd.backward"}
_BACKWARD_METHODS = {"backward", "manual_backward"}
# calls that turn their argument into a number or text for logging
_REPORTING_CALLS = {
    "print", "info", "debug", "warning", "log", "log_dict", "log_metrics", "add_scalar",
    "add_scalars", "set_postfix", "set_description", "write", "format", "float", "int", "round",
    "item", "str", "append_metric",
}


@dataclass(eq=False)
class _Accumulation:
    node: cst.CSTNode  # the statement: AugAssign, Assign or the append call
    key: str
    value: cst.BaseExpression
    ancestors: tuple[cst.CSTNode, ...]
    order: int


@dataclass(eq=False)
class _Scope:
    node: cst.CSTNode
    cls: cst.ClassDef | None
    assignments: dict[str, list[tuple[int, cst.BaseExpression | None, tuple[cst.CSTNode, ...]]]] = field(
        default_factory=dict
    )
    accumulations: list[_Accumulation] = field(default_factory=list)
    backwards: list[tuple[cst.Call, tuple[cst.CSTNode, ...]]] = field(default_factory=list)


class LossKeepsGraph(Rule):
    code = "TL403"
    name = "loss-keeps-graph"
    summary = "total += loss across loop iterations without .item()/.detach(): every step's graph is kept"
    needles = ("loss", "Loss", "criterion", "backward", "cross_entropy", "kl_div")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A loop around ``x += ...``, ``x = <... + ...>`` or ``x.append(...)``: every accumulation
        this rule judges spans a loop."""
        return any(isinstance(n, (ast.For, ast.AsyncFor, ast.While)) and _accumulates(n) for n in info.nodes)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        walk = _Walk(facts)
        walk.walk(facts.module)
        for scope in walk.scopes:
            for acc in scope.accumulations:
                message = _judge(walk, scope, acc)
                if message:
                    yield Hit(acc.node, message, fix=_fix(facts, scope, acc))


def _judge(walk: _Walk, scope: _Scope, acc: _Accumulation) -> str | None:
    if not walk.graph_loss(scope, acc.value, acc.order):
        return None
    loops = _spanned_loops(scope, acc)
    if not loops or walk.under_no_grad(acc.ancestors):
        return None
    aliases = _aliases(scope, acc.key)
    if any(_mentions(call, aliases) for s in walk.related(scope, acc.key) for call, _ in s.backwards):
        return None  # the sum is backpropagated: gradient accumulation
    outer = loops[-1]
    trained = any(any(a is outer for a in anc) for call, anc in scope.backwards)
    if trained and (_reset_within(scope, acc, loops) or _reset_by_another_method(walk, scope, acc)):
        return None  # a running total for logging: backward() freed each graph, the reset drops the rest
    if not trained and not _only_reported(walk, scope, acc, aliases):
        return None
    verb = "appending" if isinstance(acc.node, cst.Call) else "adding"
    shown = acc.value.value if isinstance(acc.value, cst.Name) else "loss"
    return (
        f"{verb} the loss tensor to {acc.key} across iterations keeps every step's autograd graph "
        f"alive: memory grows until out-of-memory; use {shown}.item() (or {shown}.detach())"
    )


def _fix(facts: ModuleFacts, scope: _Scope, acc: _Accumulation) -> Fix:
    """Accumulate ``loss.item()`` where the total is a Python number only ever formatted as one,
    else ``loss.detach()``: the same tensor without its graph, so every later use still works."""
    method = "item" if _numbers_only(scope, acc) else "detach"
    code = render(facts.module, acc.value)
    if not isinstance(acc.value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) and not acc.value.lpar:
        code = f"({code})"
    return Fix(f"Accumulate {code}.{method}()", (NodeEdit(acc.value, f"{code}.{method}()"),))


def _numbers_only(scope: _Scope, acc: _Accumulation) -> bool:
    """Whether ``total`` starts as (and is only reset to) a number literal, is summed by this
    statement alone, and is only read as a scalar number: in ``float()``/``int()``, a formatted
    f-string field (``{total:.3f}``), or through a local computed from it (``avg = total / n``)
    read the same way. Both ``.item()`` and those reads need a one-element loss, so ``.item()``
    gives the same numbers and text as the tensor did."""
    if isinstance(acc.node, cst.Call) or "." in acc.key:
        return False
    if sum(a.key == acc.key for a in scope.accumulations) != 1:
        return False
    starts = [v for o, v, _ in scope.assignments.get(acc.key, []) if o != acc.order]
    if not starts or not all(isinstance(v, (cst.Integer, cst.Float)) for v in starts):
        return False
    return _read_as_number(scope, acc.key, acc.node, 0)


def _read_as_number(scope: _Scope, key: str, accumulation: cst.CSTNode, depth: int) -> bool:
    finder = _Reads({key})
    finder.walk(scope.node)
    reads = [anc for anc in finder.found if not any(a is accumulation for a in anc)]
    if not reads or depth > 2:
        return False
    for anc in reads:
        inner = [a for a in anc if not isinstance(a, (cst.BinaryOperation, cst.UnaryOperation))]
        parent = inner[-1] if inner else None
        if isinstance(parent, cst.FormattedStringExpression) and parent.format_spec:
            continue
        call = inner[-2] if isinstance(parent, cst.Arg) and len(inner) > 1 else None
        if isinstance(call, cst.Call) and len(call.args) == 1 and dotted_name(call.func) in ("float", "int"):
            continue
        target = parent.targets[0].target if isinstance(parent, cst.Assign) and len(parent.targets) == 1 else None
        alias = target.value if isinstance(target, cst.Name) and target.value != key else None
        if alias is not None and _read_as_number(scope, alias, parent, depth + 1):
            continue
        return False
    return True


def _spanned_loops(scope: _Scope, acc: _Accumulation) -> list[cst.CSTNode]:
    """The loops around the accumulation (innermost first) whose iterations all add to the same
    accumulator: it is not reset unconditionally inside them."""
    loops = []
    for i in range(len(acc.ancestors) - 1, 0, -1):
        node, child = acc.ancestors[i - 1], acc.ancestors[i]
        if node is scope.node:
            break
        if isinstance(node, (cst.For, cst.While)) and child is node.body:
            loops.append(node)
    out = []
    for loop in loops:
        for order, _, anc in scope.assignments.get(acc.key, []):
            if order != acc.order and _inside(anc, loop) and not _conditional(anc, loop):
                return out
        out.append(loop)
    return out


def _reset_within(scope: _Scope, acc: _Accumulation, loops: list[cst.CSTNode]) -> bool:
    """Whether the accumulator is set anew inside one of these loops, also under an ``if``
    (``if step % log_every == 0: ...; total = 0.0``): what it holds is bounded by the period."""
    return any(
        order != acc.order and any(_inside(anc, loop) for loop in loops)
        for order, _, anc in scope.assignments.get(acc.key, [])
    )


def _reset_by_another_method(walk: _Walk, scope: _Scope, acc: _Accumulation) -> bool:
    """``self.total`` set anew by another method than ``__init__`` (``log_and_reset()``,
    ``on_epoch_start()``): a running total that something resets between logs."""
    return any(
        s is not scope and isinstance(s.node, cst.FunctionDef) and s.node.name.value != "__init__"
        and s.assignments.get(acc.key)
        for s in walk.related(scope, acc.key)
        if acc.key.startswith("self.")
    )


def _inside(ancestors: tuple[cst.CSTNode, ...], node: cst.CSTNode) -> bool:
    return any(a is node for a in ancestors)


def _conditional(ancestors: tuple[cst.CSTNode, ...], loop: cst.CSTNode) -> bool:
    """Whether an ``if`` (or a nested loop) sits between ``loop`` and the statement."""
    seen = False
    for a in ancestors:
        if a is loop:
            seen = True
        elif seen and isinstance(a, (cst.If, cst.For, cst.While, cst.IfExp)):
            return True
    return False


def _aliases(scope: _Scope, key: str) -> set[str]:
    """The accumulator and the local names computed from it (``avg = total / n``)."""
    names = {key}
    for _ in range(2):
        for name, entries in scope.assignments.items():
            if any(v is not None and _mentions(v, names) for _, v, _ in entries):
                names.add(name)
    return names


def _mentions(node: cst.CSTNode, keys: set[str]) -> bool:
    return any(dotted_name(n) in keys for n in find_all(node, (cst.Name, cst.Attribute)))


def _only_reported(walk: _Walk, scope: _Scope, acc: _Accumulation, aliases: set[str]) -> bool:
    """Without a backward() in the loop the sum may be meant for backprop by a caller: report
    only when every other read of the accumulator turns it into a number or text for logging."""
    finder = _Reads(aliases)
    finder.walk(scope.node)
    accumulations = {id(a.node) for a in scope.accumulations}
    reads = [anc for anc in finder.found if not any(id(a) in accumulations for a in anc)]
    if not reads:
        return False
    for anc in reads:
        if any(isinstance(a, (cst.Return, cst.Yield)) for a in anc):
            return False
        if any(isinstance(a, (cst.FormattedString, cst.Comparison)) for a in anc):
            continue
        if not any(isinstance(a, cst.Call) and _call_name(a) in _REPORTING_CALLS for a in anc):
            if not any(_assigns_local(a) for a in anc):
                return False  # stored in a container or an attribute, or passed on
    return True


def _assigns_local(node: cst.CSTNode) -> bool:
    """``avg = total / n``: an alias, whose own reads are judged too."""
    if isinstance(node, cst.Assign):
        return all(isinstance(t.target, cst.Name) for t in node.targets)
    return isinstance(node, (cst.AnnAssign, cst.AugAssign)) and isinstance(node.target, cst.Name)


def _call_name(call: cst.Call) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return func.value if isinstance(func, cst.Name) else None


class _Reads(Walker):
    """Every read of the given keys, with its ancestors (assignment targets excluded)."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = keys
        self.stack: list[cst.CSTNode] = []
        self.found: list[tuple[cst.CSTNode, ...]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) in self.keys:
            parent = self.stack[-1] if self.stack else None
            if not (isinstance(parent, (cst.AssignTarget, cst.AugAssign)) and parent.target is node):
                self.found.append(tuple(self.stack))
            return False
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self.stack and self.stack[-1] is original_node:
            self.stack.pop()


def _units_to_walk(facts: ModuleFacts) -> set[int]:
    """The outermost definitions (a top-level function or class) that hold a possible
    accumulation: ``x += ...``, ``x = x + ...`` or ``x.append(...)`` in a function. Only these and
    the module's own statements are walked."""
    functions = {id(f.scope): f for f in facts.functions}
    candidates = [f for f in facts.functions if _may_accumulate(f)]
    for cls in facts.classes:
        candidates += [a.method for a in cls.attr_assigns if isinstance(a.node, cst.AugAssign)]
    units: set[int] = set()
    for fn in candidates:
        scope, outermost = fn.scope, fn.node
        while scope.parent is not None:
            if scope.kind == "class" or id(scope) in functions:
                outermost = scope.node
            scope = scope.parent
        units.add(id(outermost))
    return units


def _may_accumulate(fn) -> bool:
    for name, entries in fn.assignments.items():
        for stmt, value in entries:
            if isinstance(stmt, cst.AugAssign):
                return True
            if isinstance(value, cst.BinaryOperation) and any(
                isinstance(side, cst.Name) and side.value == name for side in (value.left, value.right)
            ):
                return True
    return any(isinstance(c.node.func, cst.Attribute) and c.node.func.attr.value == "append" for c in fn.calls)


class _Walk(Walker):
    """One pass: per function (and the module's top level), the assignments, accumulations and
    backward calls, each with its ancestors and its order in the text."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.calls: dict[int, CallInfo] = {id(c.node): c for c in facts.calls}
        self.stack: list[cst.CSTNode] = []
        self.scope = _Scope(facts.module, None)
        self.scopes = [self.scope]
        self.scope_stack = [self.scope]
        self.classes: list[cst.ClassDef] = []
        self.order = 0
        self.units = _units_to_walk(facts)
        self.skipped: set[int] = set()
        self.depth = 0  # how many walked top-level definitions are open

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.order += 1
        if isinstance(node, (cst.ClassDef, cst.FunctionDef)) and not self.depth:
            if id(node) not in self.units:
                self.skipped.add(id(node))
                self.stack.append(node)
                return False
            self.depth += 1
        if isinstance(node, cst.ClassDef):
            self.classes.append(node)
        elif isinstance(node, (cst.FunctionDef, cst.Lambda)):
            self.scope = _Scope(node, self.classes[-1] if self.classes else self.scope.cls)
            self.scopes.append(self.scope)
            self.scope_stack.append(self.scope)
        elif isinstance(node, (cst.Assign, cst.AnnAssign)):
            self._assign(node)
        elif isinstance(node, cst.AugAssign):
            self._augassign(node)
        elif isinstance(node, (cst.For, cst.WithItem)):
            target = node.target if isinstance(node, cst.For) else (node.asname.name if node.asname else None)
            for name in find_all(target, cst.Name) if target is not None else ():
                self._record(name.value, None)
        elif isinstance(node, cst.Call):
            self._call(node)
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()
        if id(original_node) in self.skipped:
            return
        if id(original_node) in self.units:
            self.depth -= 1
        if isinstance(original_node, cst.ClassDef):
            self.classes.pop()
        elif isinstance(original_node, (cst.FunctionDef, cst.Lambda)):
            self.scope_stack.pop()
            self.scope = self.scope_stack[-1]

    def _record(self, key: str, value: cst.BaseExpression | None) -> None:
        self.scope.assignments.setdefault(key, []).append((self.order, value, (*self.stack,)))

    def _assign(self, node: cst.Assign | cst.AnnAssign) -> None:
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        for target in targets:
            key = dotted_name(target)
            if key is None:
                for name in find_all(target, cst.Name):
                    if not isinstance(target, (cst.Subscript, cst.Attribute)):
                        self._record(name.value, None)
                continue
            value = node.value
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
                for own, other in ((value.left, value.right), (value.right, value.left)):
                    if dotted_name(own) == key:
                        self._accumulate(node, key, other)
                        break
                else:
                    self._record(key, value)
            else:
                self._record(key, value)

    def _augassign(self, node: cst.AugAssign) -> None:
        key = dotted_name(node.target)
        if key is not None and isinstance(node.operator, cst.AddAssign):
            self._accumulate(node, key, node.value)

    def _accumulate(self, node: cst.CSTNode, key: str, value: cst.BaseExpression) -> None:
        self.scope.accumulations.append(_Accumulation(node, key, value, (*self.stack, node), self.order))

    def _call(self, node: cst.Call) -> None:
        func = node.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        if method == "append" and len(node.args) == 1:
            key = dotted_name(func.value)
            if key is not None:
                self._accumulate(node, key, node.args[0].value)
        elif method in _BACKWARD_METHODS or (isinstance(func, cst.Name) and func.value in _BACKWARD_METHODS):
            self.scope.backwards.append((node, (*self.stack,)))
        else:
            info = self.calls.get(id(node))
            if info is not None and self.facts.call_qualname(info) in _BACKWARD_FUNCTIONS:
                self.scope.backwards.append((node, (*self.stack,)))

    # queries

    def related(self, scope: _Scope, key: str) -> list[_Scope]:
        """The scopes where an accumulator is visible: its own, or the class's for ``self.x``."""
        if key.startswith("self.") and scope.cls is not None:
            return [s for s in self.scopes if s.cls is scope.cls]
        return [scope]

    def under_no_grad(self, ancestors: tuple[cst.CSTNode, ...]) -> bool:
        for node in ancestors:
            if isinstance(node, cst.With):
                if any(self._disables_grad(item.item) for item in node.items):
                    return True
            elif isinstance(node, cst.FunctionDef):
                if any(self._disables_grad(d.decorator) for d in node.decorators):
                    return True
        return False

    def _disables_grad(self, expr: cst.BaseExpression) -> bool:
        func = expr.func if isinstance(expr, cst.Call) else expr
        q = self.facts.qualname(func) or ""
        if q in _NO_GRAD:
            return True
        if q == "torch.set_grad_enabled" and isinstance(expr, cst.Call) and expr.args:
            arg = expr.args[0].value
            return isinstance(arg, cst.Name) and arg.value == "False"
        return False

    def graph_loss(self, scope: _Scope, expr: cst.BaseExpression, order: int, depth: int = 0) -> bool:
        """Whether ``expr`` is a loss tensor that still carries its graph."""
        if depth > 3:
            return False
        if isinstance(expr, cst.Name):
            return self._loss_name(scope, expr.value, order, depth)
        if isinstance(expr, cst.BinaryOperation):
            return self.graph_loss(scope, expr.left, order, depth) or self.graph_loss(scope, expr.right, order, depth)
        if isinstance(expr, cst.Attribute):
            return expr.attr.value == "loss" and not self._method_result(scope, expr.value, order)
        if isinstance(expr, cst.Subscript):
            index = expr.slice[0].slice if len(expr.slice) == 1 else None
            value = index.value if isinstance(index, cst.Index) else None
            return isinstance(value, cst.SimpleString) and "loss" in value.evaluated_value
        if not isinstance(expr, cst.Call):
            return False
        func = expr.func
        if isinstance(func, cst.Name) and func.value in _DETACHING_FUNCTIONS:
            return False
        info = self.calls.get(id(expr))
        q = self.facts.call_qualname(info) if info else None
        if q is not None:
            if q in _BACKWARD_FUNCTIONS:  # gradients: no graph unless asked for one
                return any(a.keyword is not None and a.keyword.value == "create_graph" for a in expr.args)
            leaf = q.rsplit(".", 1)[-1]
            if q.startswith("torch.nn.functional.") and (leaf in _LOSS_FUNCTIONS or leaf.endswith("loss")):
                return True
            if q.startswith("torch.") and leaf[:1].islower() and expr.args:
                return self.graph_loss(scope, expr.args[0].value, order, depth + 1)
            return False
        if isinstance(func, cst.Attribute):
            if func.attr.value in _DETACHING_METHODS or func.attr.value == "data":
                return False
            if self._is_criterion(scope, func):
                return True
            return self.graph_loss(scope, func.value, order, depth + 1)
        if isinstance(func, cst.Call):
            return self._is_loss_module(func)  # nn.MSELoss()(out, y)
        return isinstance(func, cst.Name) and self._is_criterion(scope, func)

    def _method_result(self, scope: _Scope, expr: cst.BaseExpression, order: int) -> bool:
        """``result = evaluator.evaluate(...)``: an object returned by a method of another object,
        not by a model call (``model(x)``, ``self.model(x)``), and never backpropagated: its
        ``.loss`` is a reported number as often as a tensor."""
        if not isinstance(expr, cst.Name):
            return False
        earlier = [v for o, v, _ in scope.assignments.get(expr.value, []) if o < order]
        value = earlier[-1] if earlier else None
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)):
            return False
        owner = value.func.value
        if isinstance(owner, cst.Name) and owner.value in ("self", "cls"):
            return False
        return not any(_backward_of(call, expr.value) for call, _ in scope.backwards)

    def _is_criterion(self, scope: _Scope, func: cst.BaseExpression) -> bool:
        """A loss module or function: named like one (``criterion``, ``loss_fn``, ``self.ce_loss``)
        or assigned an ``nn.*Loss(...)``."""
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
        if _LOSS_NAME.search(name):
            return True
        key = dotted_name(func) or ""
        scopes = self.related(scope, key) + [self.scopes[0]]
        return any(self._is_loss_module(value) for s in scopes for _, value, _ in s.assignments.get(key, []))

    def _is_loss_module(self, expr: cst.BaseExpression | None) -> bool:
        """``nn.CrossEntropyLoss(...)`` (any ``torch.nn.*Loss``)."""
        if not isinstance(expr, cst.Call):
            return False
        q = self.facts.qualname(expr.func) or ""
        return q.startswith("torch.nn.") and q.endswith("Loss")

    def _loss_name(self, scope: _Scope, name: str, order: int, depth: int) -> bool:
        """A name whose latest assignment is a loss with its graph, or that is backpropagated."""
        earlier = [(o, v) for o, v, _ in scope.assignments.get(name, []) if o < order]
        if earlier:
            latest_order, value = earlier[-1]
            if value is not None:
                if _detached(value):
                    return False
                if self.graph_loss(scope, value, latest_order, depth + 1):
                    return True
        return any(_backward_of(call, name) for call, _ in scope.backwards)


def _detached(expr: cst.BaseExpression) -> bool:
    """``loss.item()``, ``loss.detach()``, ``float(loss)``, ``loss.data``: no graph."""
    if isinstance(expr, cst.Call):
        func = expr.func
        if isinstance(func, cst.Attribute) and func.attr.value in _DETACHING_METHODS:
            return True
        if isinstance(func, cst.Name) and func.value in _DETACHING_FUNCTIONS:
            return True
    if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        return True
    return isinstance(expr, (cst.Integer, cst.Float))


def _backward_of(call: cst.Call, name: str) -> bool:
    """``name.backward()``, ``(name / k).backward()``, ``scaler.scale(name).backward()``,
    ``self.manual_backward(name)``, ``torch.autograd.grad(name, params)``: ``name`` is what is
    backpropagated, not the gradient handed in (``out.backward(g)``, ``grad_outputs=g``)."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "backward" and not _is_autograd(func.value):
        return _mentions(func.value, {name})
    first = next((a for a in call.args if a.keyword is None and not a.star), None)
    differentiated = next(
        (a for a in call.args if a.keyword is not None and a.keyword.value in ("outputs", "tensors", "loss")), first
    )
    return differentiated is not None and _mentions(differentiated.value, {name})


def _is_autograd(expr: cst.BaseExpression) -> bool:
    """``torch.autograd`` or ``autograd`` in ``torch.autograd.backward(loss)``: the function, not
    a tensor's method."""
    return (dotted_name(expr) or "").split(".")[-1] == "autograd"


def _accumulates(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    """The screen's reading of a loop's body: a possible accumulation in it."""
    for node in (n for stmt in loop.body for n in ast_nodes(stmt)):
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            return True
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.Add):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append":
            return True
    return False
