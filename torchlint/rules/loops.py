"""Statement order and loop structure, for the training-loop rules (TL5xx); not a rule.

ModuleFacts records each call with its function and guards, but not the loops around it nor the
order of statements. ``bodies(facts)`` walks the file once more (cached per facts) and gives, for
each function and for the module's top level, its calls and assignments in source order, each
with the loops (inside that body) that enclose it. A nested function or lambda is a body of its
own: its statements do not run where it is defined.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

import libcst as cst

from torchlint.facts import CallInfo, FunctionInfo, ModuleFacts, Scope, Walker

Loop = cst.For | cst.While
Statement = cst.Assign | cst.AnnAssign | cst.AugAssign


@dataclass(eq=False)
class Event:
    """A call or an assignment, with the loops around it (outermost first) in its body."""

    node: cst.Call | Statement | cst.Del
    loops: tuple[Loop, ...]
    call: CallInfo | None = None  # for a call


@dataclass(eq=False)
class Body:
    """A function's body or the module's top level, as events in source order."""

    node: cst.Module | cst.FunctionDef | cst.Lambda
    function: FunctionInfo | None
    scope: Scope
    events: list[Event] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)  # every loop in this body, in source order

    def calls(self) -> Iterator[CallInfo]:
        return (e.call for e in self.events if e.call is not None)

    def in_loop(self, loop: Loop) -> list[Event]:
        """The events inside ``loop`` (nested loops included), in order."""
        return [e for e in self.events if loop in e.loops]


_CACHE: WeakKeyDictionary[ModuleFacts, list[Body]] = WeakKeyDictionary()


def bodies(facts: ModuleFacts) -> list[Body]:
    """The module's top level first, then every function, each as ordered events."""
    if facts not in _CACHE:
        walker = _Walker(facts)
        walker.walk(facts.module)
        _CACHE[facts] = walker.done
    return _CACHE[facts]


def body_of(facts: ModuleFacts, function: FunctionInfo | None) -> Body | None:
    for body in bodies(facts):
        if body.function is function:
            return body
    return None


class _Walker(Walker):
    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.functions = {id(f.node): f for f in facts.functions}
        self.calls = {id(c.node): c for c in facts.calls}
        self.done: list[Body] = []
        self.stack: list[tuple[Body, list[Loop]]] = []
        self._open(facts.module, None, facts.module_scope)

    def _open(self, node, function: FunctionInfo | None, scope: Scope) -> None:
        body = Body(node, function, scope)
        self.done.append(body)
        self.stack.append((body, []))

    def _add(self, node, call: CallInfo | None = None) -> None:
        body, loops = self.stack[-1]
        body.events.append(Event(node, tuple(loops), call))

    def _visit_function(self, node: cst.FunctionDef | cst.Lambda) -> bool:
        info = self.functions.get(id(node))
        if info is None:
            return False
        if isinstance(node, cst.FunctionDef):
            for d in node.decorators:
                self.walk(d)
        self.walk(node.params)
        self._open(node, info, info.scope)
        self.walk(node.body)
        self.stack.pop()
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return self._visit_function(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return self._visit_function(node)

    def _visit_loop(self, node: Loop, outside: cst.CSTNode | None, inside: list[cst.CSTNode]) -> bool:
        body, loops = self.stack[-1]
        if outside is not None:
            self.walk(outside)
        body.loops.append(node)
        loops.append(node)
        for part in inside:
            self.walk(part)
        loops.pop()
        if node.orelse is not None:
            self.walk(node.orelse)
        return False

    def visit_For(self, node: cst.For) -> bool:
        return self._visit_loop(node, node.iter, [node.target, node.body])

    def visit_While(self, node: cst.While) -> bool:
        return self._visit_loop(node, None, [node.test, node.body])

    def visit_Call(self, node: cst.Call) -> None:
        self._add(node, self.calls.get(id(node)))

    def leave_Assign(self, node: cst.Assign) -> None:
        self._add(node)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._add(node)

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        self._add(node)

    def leave_Del(self, node: cst.Del) -> None:
        self._add(node)


# --- helpers shared by the loop rules ----------------------------------------------------------


def method_name(call: cst.Call) -> str | None:
    """``a.b.step(...)`` -> ``"step"``; ``step(...)`` -> ``"step"``."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def receiver(call: cst.Call) -> cst.BaseExpression | None:
    """``opt.step()`` -> ``opt``."""
    return call.func.value if isinstance(call.func, cst.Attribute) else None


def last_name(expr: cst.BaseExpression | None) -> str | None:
    """``self.opt_g`` -> ``"opt_g"``; ``opts[0]`` -> ``"opts"``; ``opt`` -> ``"opt"``."""
    if isinstance(expr, cst.Subscript):
        expr = expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return None


def called_functions(facts: ModuleFacts, call: CallInfo) -> list[FunctionInfo]:
    """The functions of this file a call may run: ``self.helper()`` (a method of the caller's
    class or its local bases) or ``helper()`` (a function defined in an enclosing scope)."""
    func = call.node.func
    fn = call.function
    if isinstance(func, cst.Attribute) and fn is not None and fn.cls is not None:
        if isinstance(func.value, cst.Name) and func.value.value == fn.instance:
            return methods_named(facts, fn.cls, func.attr.value)
        return []
    if isinstance(func, cst.Name):
        scopes = []
        s: Scope | None = call.scope or (fn.scope if fn else facts.module_scope)
        while s is not None:
            scopes.append(s.node)
            s = s.parent
        return [
            f
            for f in facts.functions
            if isinstance(f.node, cst.FunctionDef) and f.name == func.value and not f.is_method
            and f.scope.parent is not None and f.scope.parent.node in scopes
        ]
    return []


def methods_named(facts: ModuleFacts, cls, name: str, seen: set[int] | None = None) -> list[FunctionInfo]:
    """The method ``name`` of a class, or of the first local base that defines it."""
    seen = seen if seen is not None else set()
    if id(cls) in seen:
        return []
    seen.add(id(cls))
    if name in cls.methods:
        return [cls.methods[name]]
    out: list[FunctionInfo] = []
    for base in cls.bases:
        local = facts.local_class(base)
        if local is not None:
            out += methods_named(facts, local, name, seen)
    return out


def assigned_values(body: Body, name: str, before: cst.CSTNode | None = None) -> list[cst.BaseExpression | None]:
    """The values assigned to the local ``name`` in this body, in order (only those before the
    event ``before`` when it is given); ``None`` for a binding whose value is not known (``+=``,
    tuple unpacking)."""
    out: list[cst.BaseExpression | None] = []
    for event in body.events:
        if before is not None and event.node is before:
            break
        node = event.node
        if isinstance(node, cst.Assign):
            for t in node.targets:
                if isinstance(t.target, cst.Name) and t.target.value == name:
                    out.append(node.value)
                elif isinstance(t.target, (cst.Tuple, cst.List)) and any(
                    isinstance(e.value, cst.Name) and e.value.value == name for e in t.target.elements
                ):
                    out.append(None)
        elif isinstance(node, cst.AnnAssign) and isinstance(node.target, cst.Name) and node.target.value == name:
            out.append(node.value)
        elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name) and node.target.value == name:
            out.append(None)
    return out
