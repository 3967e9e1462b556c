"""Mutation recall: inject each bug torchlint is meant to catch into real code, one change per
copy, and count how often the rule for it reports the copy.

For every site of a kind in the corpus (found with LibCST visitors), the file is parsed, that one
node is replaced (a LibCST transformation of the node) and the module rendered again. The mutant
is checked in one file, as the CLI checks a file (``torchlint.engine.check_source`` with the
mission codes, no project index, ``# noqa`` not applied). A mutant is *detected* when the
expected code is reported at a line inside the mutated class (the class around the mutated call or
statement). A site counts only when the same class had no finding of that code before the change:
sites whose class already had one are "not clean" and left out of the recall.

Kinds (expected code):

    dropout-training    drop training=self.training from F.dropout & co          -> TL201
    sdpa-gate           drop the self.training gate of SDPA's dropout_p          -> TL202
    parameter-unwrap    self.w = nn.Parameter(torch.randn(..)) -> torch.randn(..) -> TL101
    buffer-to-attr      self.register_buffer("n", t) -> self.n = t                -> TL101
    modulelist-to-list  nn.ModuleList([..]) -> [..], nn.ModuleDict({..}) -> {..}  -> TL102
    drop-skip           out = out + identity -> out = out (the skip goes unread)  -> TL302 or TL301
    sequential-rebase   a residual block `return x + self.f(x)` rebased onto
                        nn.Sequential without its forward                         -> TL301
    batchnorm-training  drop training=... from F.batch_norm                       -> TL203

Sites are sampled per package (at most ``--per-package`` per kind and package, then at most
``--max-per-kind`` per kind), shuffled by ``--seed``: the same seed and corpus give the same
mutants. Run it with the torchlint it should measure (the venv's):

    .venv/bin/python benchmarks/mutation_recall.py [CORPUS] --seed 14 [--kind drop-skip] \\
        [--per-package 8] [--max-per-kind 0] [--jobs 2] [--misses] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import os
import random
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from torchlint import facts
from torchlint import index as project_index
from torchlint.engine import check_source, module_name_for
from torchlint.facts import dotted_name, self_attr
from torchlint.rules import residual_without_skip
from torchlint.rules.residual_without_skip import residual_by_docstring, residual_marker

DEFAULT_CORPUS = "/work/corpus"
CACHE_DIR = Path.home() / ".cache" / "torchlint-bench" / "mutation-recall"
SITES_VERSION = 2  # raise whenever a change here finds other sites: it keys the cached site lists
MISSION_CODES = ("TL101", "TL102", "TL201", "TL202", "TL203", "TL301", "TL302")

EXPECTED = {
    "dropout-training": ("TL201",),
    "sdpa-gate": ("TL202",),
    "parameter-unwrap": ("TL101",),
    "buffer-to-attr": ("TL101",),
    "modulelist-to-list": ("TL102",),
    "drop-skip": ("TL302", "TL301"),
    "sequential-rebase": ("TL301",),
    "batchnorm-training": ("TL203",),
}
KINDS = tuple(EXPECTED)
# A file can hold a site of the kind only if its text contains one of these.
NEEDLES = {
    "dropout-training": ("dropout",),
    "sdpa-gate": ("scaled_dot_product_attention",),
    "parameter-unwrap": ("Parameter",),
    "buffer-to-attr": ("register_buffer",),
    "modulelist-to-list": ("ModuleList", "ModuleDict"),
    "drop-skip": ("def forward",),
    "sequential-rebase": ("def forward",),
    "batchnorm-training": ("batch_norm",),
}

F = "torch.nn.functional."
# function -> its parameters in order (the position of ``training`` among them)
DROPOUTS = {
    F + name: ("input", "p", "training", "inplace")
    for name in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
}
BATCH_NORM = {F + "batch_norm": ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")}
SDPA = F + "scaled_dot_product_attention"
PARAMETERS = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
MODULE_LISTS = {"torch.nn.ModuleList", "torch.nn.modules.container.ModuleList"}
MODULE_DICTS = {"torch.nn.ModuleDict", "torch.nn.modules.container.ModuleDict"}
TENSOR_FACTORIES = {
    "randn", "rand", "randint", "randperm", "normal", "zeros", "ones", "empty", "full", "eye", "arange",
    "range", "linspace", "logspace", "tensor", "as_tensor", "Tensor", "from_numpy", "zeros_like",
    "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "empty_strided",
    "hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window",
    "FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "BoolTensor", "ByteTensor",
}
# A local named so is a skip tensor even when it is not a bare copy of the input.
SKIP_NAME_TOKENS = {"identity", "residual", "res", "shortcut", "skip", "short", "sc", "inp", "orig", "skipped"}
COPY_METHODS = {"clone", "detach", "contiguous", "float"}


# --- names: the imports of a file, as qualified names ------------------------------------------


class Imports(cst.CSTVisitor):
    """What each imported name stands for (anywhere in the file), and the star-imported modules."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.stars: list[str] = []

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name) or ""
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                self.aliases[head] = head

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted_name(node.module) or ""
        if isinstance(node.names, cst.ImportStar):
            self.stars.append(module)
            return
        for alias in node.names:
            name = dotted_name(alias.name) or ""
            local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
            self.aliases[local] = f"{module}.{name}"

    def resolve(self, expr: cst.BaseExpression) -> set[str]:
        """The qualified names ``expr`` may stand for (one, or one per star import)."""
        name = dotted_name(expr)
        if name is None:
            return set()
        head, _, rest = name.partition(".")
        if head in self.aliases:
            return {self.aliases[head] + ("." + rest if rest else "")}
        return {f"{star}.{name}" for star in self.stars} if self.stars else set()

    def is_(self, expr: cst.BaseExpression, names: set[str] | dict) -> bool:
        return bool(self.resolve(expr) & set(names))

    def spelling(self, qualname: str) -> str | None:
        """How this file can name ``qualname`` (``torch.nn.Sequential`` -> ``nn.Sequential``)."""
        best = None
        for local, full in self.aliases.items():
            if qualname == full:
                return local
            if qualname.startswith(full + "."):
                candidate = local + qualname[len(full) :]
                if best is None or len(candidate) < len(best):
                    best = candidate
        return best


# --- small expression helpers ------------------------------------------------------------------


def mentions_training(expr: cst.CSTNode) -> bool:
    """Whether ``expr`` reads some ``<x>.training``."""
    if isinstance(expr, cst.Attribute) and expr.attr.value == "training":
        return True
    return any(mentions_training(c) for c in expr.children)


def is_zero(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Integer, cst.Float)) and float(expr.value.replace("_", "")) == 0.0


def contains_factory(expr: cst.CSTNode, imports: Imports) -> bool:
    """Whether ``expr`` builds a tensor with a torch factory (``torch.randn(..) * 0.02``)."""
    if isinstance(expr, cst.Lambda):
        return False
    if isinstance(expr, cst.Call) and any(
        q.startswith("torch.") and q.rsplit(".", 1)[1] in TENSOR_FACTORIES for q in imports.resolve(expr.func)
    ):
        return True
    return any(contains_factory(c, imports) for c in expr.children)


def with_parens_of(new: cst.BaseExpression, old: cst.BaseExpression) -> cst.BaseExpression:
    """``new`` wearing ``old``'s parentheses too, so precedence around it stays as it was."""
    if not old.lpar:
        return new
    return new.with_changes(lpar=[*old.lpar, *new.lpar], rpar=[*new.rpar, *old.rpar])


def standalone(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``expr`` taken out of the brackets it sat in: parenthesized when it spans lines outside
    brackets of its own (``torch.rand(n)`` / ``.mul_(2)`` on the next line)."""
    try:
        ast.parse("_ = " + cst.Module([]).code_for_node(expr))
        return expr
    except SyntaxError:
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def find_arg(call: cst.Call, keyword: str, position: int) -> cst.Arg | None:
    """The argument given for a parameter, by keyword or position (None: not given explicitly)."""
    return facts.find_arg(call, keyword, position)[0]


def without_arg(call: cst.Call, arg: cst.Arg, params: Sequence[str]) -> cst.Call:
    """``call`` without ``arg``; positional arguments after it become keyword arguments, so each
    keeps its meaning."""
    index = list(call.args).index(arg)
    args = []
    for i, a in enumerate(call.args):
        if i == index:
            continue
        if i > index and a.keyword is None and not a.star and i < len(params):
            a = a.with_changes(keyword=cst.Name(params[i]), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
        args.append(a)
    if index == len(call.args) - 1 and args:
        args[-1] = args[-1].with_changes(comma=arg.comma, whitespace_after_arg=arg.whitespace_after_arg)
    return call.with_changes(args=args)


def _indented(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code.strip("\n")), "      | ")


def one_line(code: str, limit: int = 160) -> str:
    text = " ".join(code.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- sites ---------------------------------------------------------------------------------------


@dataclass
class Site:
    """One place a bug can be injected: replace ``old`` with ``new`` (None: remove ``old``)."""

    kind: str
    old: cst.CSTNode
    new: cst.CSTNode | None
    cls_index: int  # the enclosing class, numbered in source order
    cls_name: str
    note: str = ""  # drop-skip: the skip local; sequential-rebase: "strict" or "loose"


@dataclass
class _Function:
    node: cst.FunctionDef
    instance: str | None  # the first parameter of a method (also seen from functions nested in it)
    cls: tuple[int, str] | None


class SiteFinder(cst.CSTVisitor):
    """Every site of the selected kinds in one module, in source order."""

    def __init__(self, imports: Imports, kinds: Sequence[str]) -> None:
        self.imports, self.kinds = imports, set(kinds)
        self.sites: list[Site] = []
        self.classes: list[tuple[int, str]] = []
        self.functions: list[_Function] = []
        self.class_count = 0
        self.blocks: list[cst.BaseSuite] = []

    # context

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append((self.class_count, node.name.value))
        self.class_count += 1
        if "sequential-rebase" in self.kinds:
            self._rebase(node, self.classes[-1][0])

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        outer = self.functions[-1] if self.functions else None
        in_class_body = bool(self.classes) and (outer is None or outer.cls != self.classes[-1])
        if in_class_body:
            params = node.params.params or node.params.posonly_params
            is_static = any(dotted_name(d.decorator) == "staticmethod" for d in node.decorators)
            instance = params[0].name.value if params and not is_static else None
        else:
            instance = outer.instance if outer is not None else None
        self.functions.append(_Function(node, instance, self.classes[-1] if self.classes else None))
        if in_class_body and node.name.value == "forward" and "drop-skip" in self.kinds:
            self.sites.extend(drop_skip_sites(node, self.classes[-1]))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.pop()

    @property
    def _method(self) -> _Function | None:
        fn = self.functions[-1] if self.functions else None
        return fn if fn is not None and fn.cls is not None and self.classes and fn.cls == self.classes[-1] else None

    def _add(self, kind: str, old: cst.CSTNode, new: cst.CSTNode | None, note: str = "") -> None:
        index, name = self.classes[-1]
        self.sites.append(Site(kind, old, new, index, name, note))

    # calls: dropout, batch_norm, SDPA

    def visit_Call(self, node: cst.Call) -> None:
        fn = self._method
        if fn is None:
            return
        names = self.imports.resolve(node.func)
        if not names:
            return
        for kind, table in (("dropout-training", DROPOUTS), ("batchnorm-training", BATCH_NORM)):
            if kind in self.kinds and names & set(table):
                params = table[next(iter(names & set(table)))]
                arg = find_arg(node, "training", params.index("training"))
                if arg is not None and follows_training(arg.value, fn.node) and not self._under_training_test():
                    self._add(kind, node, without_arg(node, arg, params))
        if "sdpa-gate" in self.kinds and SDPA in names:
            arg = find_arg(node, "dropout_p", 4)
            if arg is not None:
                self._sdpa(node, arg, fn)

    def visit_If(self, node: cst.If) -> None:
        self.blocks.append(node)

    def leave_If(self, node: cst.If) -> None:
        self.blocks.pop()

    def _under_training_test(self) -> bool:
        return any(mentions_training(b.test) for b in self.blocks)

    def _sdpa(self, call: cst.Call, arg: cst.Arg, fn: _Function) -> None:
        value = arg.value
        ungated = ungate(value)
        if ungated is not None:
            self._add("sdpa-gate", value, ungated)
        elif isinstance(value, cst.Name):
            for old, new in gated_local(fn.node, value):
                self._add("sdpa-gate", old, new)
                return

    # assignments: Parameter, ModuleList/ModuleDict; register_buffer

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._assigned(node.targets[0].target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._assigned(node.target, node.value)

    def _assigned(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        fn = self._method
        if fn is None or self_attr(target, fn.instance) is None or not isinstance(value, cst.Call):
            return
        if "parameter-unwrap" in self.kinds and self.imports.is_(value.func, PARAMETERS):
            data = find_arg(value, "data", 0)
            if data is not None and contains_factory(data.value, self.imports):
                self._add("parameter-unwrap", value, with_parens_of(standalone(data.value), value))
        if "modulelist-to-list" in self.kinds:
            if self.imports.is_(value.func, MODULE_LISTS):
                self._add("modulelist-to-list", value, plain_container(value, "modules", cst.List, "list"))
            elif self.imports.is_(value.func, MODULE_DICTS):
                self._add("modulelist-to-list", value, plain_container(value, "modules", cst.Dict, "dict"))

    def visit_Expr(self, node: cst.Expr) -> None:
        fn = self._method
        call = node.value
        if (
            "buffer-to-attr" not in self.kinds
            or fn is None
            or not isinstance(call, cst.Call)
            or not isinstance(call.func, cst.Attribute)
            or call.func.attr.value != "register_buffer"
            or dotted_name(call.func.value) != fn.instance
        ):
            return
        name, tensor = find_arg(call, "name", 0), find_arg(call, "tensor", 1)
        if name is None or tensor is None or not isinstance(name.value, cst.SimpleString):
            return
        attr = ast.literal_eval(name.value.value)
        if not isinstance(attr, str) or not attr.isidentifier() or not contains_factory(tensor.value, self.imports):
            return
        target = cst.Attribute(cst.Name(fn.instance), cst.Name(attr))
        self._add("buffer-to-attr", node, cst.Assign([cst.AssignTarget(target)], standalone(tensor.value), semicolon=node.semicolon))

    # classes: rebase a residual block onto nn.Sequential

    def _rebase(self, node: cst.ClassDef, index: int) -> None:
        name = node.name.value
        if residual_marker(name) != "residual" and not residual_by_docstring(node.get_docstring() or ""):
            return
        if len(node.bases) != 1 or not isinstance(node.body, cst.IndentedBlock):
            return
        body = node.body.body
        methods = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
        forward = methods.get("forward")
        if forward is None or "__init__" not in methods:
            return
        shape = skip_shape(forward)
        if shape is None:
            return
        sequential = self.imports.spelling("torch.nn.Sequential")
        if sequential is None:
            return
        rest = [s for s in body if s is not forward]
        new = node.with_changes(
            bases=[node.bases[0].with_changes(value=cst.parse_expression(sequential))],
            body=node.body.with_changes(body=rest or [cst.SimpleStatementLine([cst.Pass()])]),
        )
        self.sites.append(Site("sequential-rebase", node, new, index, name, shape))


def ungate(value: cst.BaseExpression) -> cst.BaseExpression | None:
    """The rate without its ``self.training`` gate: the non-zero branch of ``p if self.training
    else 0.0``, or ``p`` of ``p * self.training``; None when ``value`` has no such gate."""
    if isinstance(value, cst.IfExp) and mentions_training(value.test):
        if is_zero(value.orelse) and not is_zero(value.body):
            return with_parens_of(value.body, value)
        if is_zero(value.body) and not is_zero(value.orelse):
            return with_parens_of(value.orelse, value)
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
        if mentions_training(value.right) and not mentions_training(value.left):
            return with_parens_of(value.left, value)
        if mentions_training(value.left) and not mentions_training(value.right):
            return with_parens_of(value.right, value)
    return None


def assignments(function: cst.FunctionDef, name: str) -> list[tuple[cst.Assign, list[cst.BaseExpression]]]:
    """The assignments to a local name in a function, each with the tests of the ifs around it."""

    class Finder(cst.CSTVisitor):
        def __init__(self) -> None:
            self.tests: list[cst.BaseExpression] = []
            self.found: list[tuple[cst.Assign, list[cst.BaseExpression]]] = []

        def visit_If(self, node: cst.If) -> None:
            self.tests.append(node.test)

        def leave_If(self, node: cst.If) -> None:
            self.tests.pop()

        def visit_Assign(self, node: cst.Assign) -> None:
            if any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                self.found.append((node, list(self.tests)))

    finder = Finder()
    function.body.visit(finder)
    return finder.found


def follows_training(value: cst.BaseExpression, function: cst.FunctionDef) -> bool:
    """Whether ``value`` reads ``self.training``, or is a local assigned from it or under a test
    of it (``if self.training: bn_training = True``)."""
    if mentions_training(value):
        return True
    return isinstance(value, cst.Name) and any(
        mentions_training(a.value) or any(mentions_training(t) for t in tests)
        for a, tests in assignments(function, value.value)
    )


def gated_local(function: cst.FunctionDef, name: cst.Name) -> Iterator[tuple[cst.CSTNode, cst.CSTNode]]:
    """Where a local rate is gated: ``p = self.p if self.training else 0.0`` (ungate that value),
    or ``p = self.p`` under ``if self.training:`` (pass ``self.p`` in place of the local)."""
    for a, tests in assignments(function, name.value):
        ungated = ungate(a.value)
        if ungated is not None:
            yield a.value, ungated
        elif any(mentions_training(t) for t in tests) and not is_zero(a.value):
            yield name, with_parens_of(a.value, name)


def plain_container(call: cst.Call, keyword: str, literal: type, builtin: str) -> cst.BaseExpression:
    """``nn.ModuleList([a, b])`` -> ``[a, b]``, ``ModuleList(gen)`` -> ``list(gen)``,
    ``ModuleList()`` -> ``[]``; the same for ModuleDict with dicts."""
    arg = find_arg(call, keyword, 0)
    if arg is None:
        new: cst.BaseExpression = literal([])
    elif literal is cst.List and isinstance(arg.value, (cst.List, cst.ListComp)):
        new = arg.value
    elif literal is cst.List and isinstance(arg.value, cst.Tuple) and arg.value.elements:
        new = cst.List(arg.value.elements)
    elif literal is cst.Dict and isinstance(arg.value, (cst.Dict, cst.DictComp)):
        new = arg.value
    else:
        new = cst.Call(cst.Name(builtin), [cst.Arg(arg.value)])
    return with_parens_of(new, call)


# --- drop-skip: the skip operand of the add that makes a forward's output ----------------------


class _Reads(cst.CSTVisitor):
    """Reads and assignments of local names in a function body, numbered in source order."""

    def __init__(self) -> None:
        self.order = 0
        self.reads: dict[str, list[int]] = defaultdict(list)
        self.assigned: dict[str, list[tuple[int, cst.BaseExpression]]] = defaultdict(list)
        self.adds: list[tuple[int, cst.CSTNode, cst.Name, cst.CSTNode | None]] = []  # (order, node, operand, stmt)
        self.lines: list[cst.SimpleStatementLine] = []
        self.bodies: list[cst.BaseSuite] = []

    def _tick(self) -> int:
        self.order += 1
        return self.order

    def visit_Name(self, node: cst.Name) -> None:
        self.reads[node.value].append(self._tick())

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        if node.default is not None:
            node.default.visit(self)
        return False

    def visit_AsName(self, node: cst.AsName) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> bool:
        node.value.visit(self)
        for t in node.targets:
            self._target(t.target, node.value)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        if node.value is not None:
            node.value.visit(self)
        self._target(node.target, node.value)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, cst.AddAssign) and isinstance(node.value, cst.Name):
            self.adds.append((self.order + 1, node, node.value, self.lines[-1] if self.lines else None))

    def visit_For(self, node: cst.For) -> bool:
        node.iter.visit(self)
        self._target(node.target, None)
        node.body.visit(self)
        if node.orelse is not None:
            node.orelse.visit(self)
        return False

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        node.iter.visit(self)
        for cond in node.ifs:
            cond.visit(self)
        if node.inner_for_in is not None:
            node.inner_for_in.visit(self)
        return False

    def visit_NamedExpr(self, node: cst.NamedExpr) -> bool:
        node.value.visit(self)
        self._target(node.target, node.value)
        return False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Add):
            for operand in (node.left, node.right):
                if isinstance(operand, cst.Name):
                    self.adds.append((self.order + 1, node, operand, None))

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.lines.append(node)

    def leave_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.lines.pop()

    def _target(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        if isinstance(target, cst.Name):
            self.assigned[target.value].append((self._tick(), value))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for e in target.elements:
                self._target(e.value, None)
        elif isinstance(target, cst.StarredElement):
            self._target(target.value, None)
        else:
            target.visit(self)


def _names_in(expr: cst.CSTNode) -> set[str]:
    if isinstance(expr, cst.Name):
        return {expr.value}
    if isinstance(expr, cst.Attribute):
        return _names_in(expr.value)
    return {n for c in expr.children for n in _names_in(c)}


def _is_copy(value: cst.BaseExpression, stream: set[str]) -> bool:
    """``x`` or ``x.clone()`` of a name that holds the input stream."""
    if isinstance(value, cst.Name):
        return value.value in stream
    return (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in COPY_METHODS
        and isinstance(value.func.value, cst.Name)
        and value.func.value.value in stream
    )


def drop_skip_sites(forward: cst.FunctionDef, cls: tuple[int, str]) -> Iterator[Site]:
    """Adds in ``forward`` with a skip local as an operand (read there and nowhere else): the
    local is a copy of the input or of a local (``identity = x``), or named as a skip and computed
    from them (``shortcut = self.down(x)``)."""
    params = [p.name.value for p in (*forward.params.posonly_params, *forward.params.params)][1:]
    if not params or not isinstance(forward.body, cst.IndentedBlock):
        return
    reads = _Reads()
    forward.body.visit(reads)
    stream = set(params) | set(reads.assigned)
    for order, node, operand, line in reads.adds:
        local = operand.value
        if local in params or len(reads.reads[local]) != 1:
            continue
        before = [v for o, v in reads.assigned.get(local, []) if o < order and v is not None]
        named_skip = bool(SKIP_NAME_TOKENS & set(local.lower().split("_")))
        if not any(_is_copy(v, stream - {local}) or (named_skip and _names_in(v) & (stream - {local})) for v in before):
            continue
        if isinstance(node, cst.BinaryOperation):
            other = node.right if node.left is operand else node.left
            if isinstance(other, cst.Name) and other.value == local:
                continue
            yield Site("drop-skip", node, with_parens_of(other, node), *cls, local)
        elif line is not None and len(line.body) == 1:
            yield Site("drop-skip", line, line.with_changes(body=[cst.Pass()]), *cls, local)


def skip_shape(forward: cst.FunctionDef) -> str | None:
    """``strict`` for a one-input forward that is ``return x + self.f(x)`` (either order),
    ``loose`` for one that adds its input (or a copy of it) to something; None otherwise."""
    params = forward.params
    if isinstance(params.star_arg, cst.Param):
        return None
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if len(names) != 2 or params.kwonly_params or params.star_kwarg is not None:
        return None
    x = names[1]
    body = [s for s in forward.body.body if not _is_docstring(s)] if isinstance(forward.body, cst.IndentedBlock) else []
    if len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Return):
        value = body[0].body[0].value
        if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
            for a, b in ((value.left, value.right), (value.right, value.left)):
                if isinstance(a, cst.Name) and a.value == x and isinstance(b, cst.Call) and x in _names_in(b):
                    return "strict"
    reads = _Reads()
    forward.body.visit(reads)
    copies = {x} | {n for n, vs in reads.assigned.items() if any(v is not None and _is_copy(v, {x}) for _, v in vs)}
    if any(operand.value in copies for _, _, operand, _ in reads.adds):
        return "loose"
    return None


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def find_sites(module: cst.Module, kinds: Sequence[str]) -> list[Site]:
    imports = Imports()
    module.visit(imports)
    finder = SiteFinder(imports, kinds)
    module.visit(finder)
    return finder.sites


def mutate(module: cst.Module, site: Site) -> str:
    """The module's source with the one change of ``site``."""
    if site.new is None:
        return module.deep_remove(site.old).code
    return module.deep_replace(site.old, site.new).code


# --- running -------------------------------------------------------------------------------------


def read_module(path: Path) -> tuple[str, cst.Module] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return text, cst.parse_module(text)
    except (cst.ParserSyntaxError, RecursionError):
        return None


def list_sites(job: tuple[str, tuple[str, ...]]) -> list[tuple[str, int, str]]:
    """(kind, index among the file's sites of that kind, note) of each site in a file."""
    path, kinds = job
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    kinds = tuple(k for k in kinds if any(n in text for n in NEEDLES[k]))
    if not kinds or "torch" not in text:
        return []
    parsed = read_module(Path(path))
    if parsed is None:
        return []
    counts: Counter[str] = Counter()
    out = []
    for site in find_sites(parsed[1], kinds):
        out.append((site.kind, counts[site.kind], site.note))
        counts[site.kind] += 1
    return out


def class_spans(text: str) -> list[tuple[int, int]] | None:
    """(first line, last line) of each class, in source order; None if the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    classes = sorted((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)), key=lambda n: (n.lineno, n.col_offset))
    return [(n.lineno, n.end_lineno or n.lineno) for n in classes]


@dataclass
class Outcome:
    path: str
    line: int
    kind: str
    cls: str
    before: str
    after: str
    status: str  # detected, missed, not-clean (the class had the finding before), broken (no parse)
    detected_by: list[str] = field(default_factory=list)
    in_class: list[str] = field(default_factory=list)  # the mutant's findings inside the class


def run_file(job: tuple[str, str, tuple[tuple[str, int], ...], str | None]) -> list[Outcome]:
    """Mutate each chosen site of one file and check every mutant; with a project root, against
    that project's index, as ``torchlint check <project>`` does."""
    path, rel, chosen, root = job
    project = _loader(root) if root else None
    parsed = read_module(Path(path))
    if parsed is None:
        return []
    text, module = parsed
    kinds = sorted({k for k, _ in chosen})
    by_kind: dict[str, list[Site]] = defaultdict(list)
    for site in find_sites(module, kinds):
        by_kind[site.kind].append(site)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    module_name = module_name_for(Path(path))
    original = check_source(text, path, MISSION_CODES, module_name, apply_noqa=False, project=project)
    spans = class_spans(text) or []
    outcomes = []
    for kind, index in chosen:
        site = by_kind[kind][index]
        expected = EXPECTED[kind]
        first, last = spans[site.cls_index]
        line = positions[site.old].start.line
        before = module.code_for_node(site.old)
        after = module.code_for_node(site.new) if site.new is not None else "(removed)"
        outcome = Outcome(rel, line, kind, site.cls_name, before, after, "")
        if any(f.code in expected and first <= f.line <= last for f in original):
            outcome.status = "not-clean"
            outcomes.append(outcome)
            continue
        mutant = mutate(module, site)
        mutant_spans = class_spans(mutant)
        if mutant_spans is None or len(mutant_spans) != len(spans):
            outcome.status = "broken"
            outcomes.append(outcome)
            continue
        first, last = mutant_spans[site.cls_index]
        found = [f for f in check_source(mutant, path, expected, module_name, apply_noqa=False, project=project) if first <= f.line <= last]
        outcome.detected_by = sorted({f.code for f in found})
        outcome.status = "detected" if found else "missed"
        if not found:  # what the other rules say about the class, for the list of misses
            found = [f for f in check_source(mutant, path, MISSION_CODES, module_name, apply_noqa=False, project=project) if first <= f.line <= last]
        outcome.in_class = [f"{f.code}@{f.line}" for f in found]
        outcomes.append(outcome)
    return outcomes


def all_sites(corpus: Path, pool: ProcessPoolExecutor) -> list[tuple[str, str, int, str]]:
    """(relative path, kind, index, note) of every site in the corpus. Kept in a cache file keyed
    by SITES_VERSION and the residual-name module it uses; each file by its size and mtime."""
    files = sorted(p for p in corpus.rglob("*.py") if p.is_file())
    digest = hashlib.blake2b(Path(residual_without_skip.__file__).read_bytes(), digest_size=12).hexdigest()
    cache_file = CACHE_DIR / f"sites-v{SITES_VERSION}-{digest}.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    stamps = {str(p): f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files}
    todo = [p for p in files if cache.get(str(p), {}).get("stamp") != stamps[str(p)]]
    for p, found in zip(todo, pool.map(list_sites, [(str(p), KINDS) for p in todo], chunksize=16)):
        cache[str(p)] = {"stamp": stamps[str(p)], "sites": found}
    if todo:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({str(p): cache[str(p)] for p in files}))
        os.replace(partial, cache_file)  # whole, also with other runs writing at the same time
    return [
        (p.relative_to(corpus).as_posix(), kind, index, note)
        for p in files
        for kind, index, note in cache[str(p)]["sites"]
    ]


def sample(
    sites: list[tuple[str, str, int, str]], kinds: Sequence[str], seed: int, per_package: int, max_per_kind: int
) -> list[tuple[str, str, int, str]]:
    """At most ``per_package`` sites per kind and package, then at most ``max_per_kind`` per
    kind (0: no limit), drawn with the seed. ``sites``: (relative path, kind, index, note)."""
    chosen = []
    for kind in kinds:
        groups: dict[str, list] = defaultdict(list)
        for s in sites:
            if s[1] == kind:
                groups[s[0].split("/", 1)[0]].append(s)
        picked = []
        for package in sorted(groups):
            group = sorted(groups[package])
            random.Random(f"{seed}:{kind}:{package}").shuffle(group)
            picked.extend(group[:per_package] if per_package else group)
        picked.sort()
        if max_per_kind and len(picked) > max_per_kind:
            random.Random(f"{seed}:{kind}").shuffle(picked)
            picked = sorted(picked[:max_per_kind])
        chosen.extend(picked)
    return chosen


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default=DEFAULT_CORPUS, help=f"directory of packages (default {DEFAULT_CORPUS})")
    parser.add_argument("--seed", type=int, default=14, help="the sampling seed (default 14)")
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    parser.add_argument("--per-package", type=int, default=6, help="at most this many sites per kind and package (0: all)")
    parser.add_argument("--max-per-kind", type=int, default=0, help="at most this many mutants per kind (0: no limit)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--misses", action="store_true", help="show each miss's code in full (default: one line, cut at 160 characters)")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    parser.add_argument(
        "--project", action="store_true",
        help="check each mutant with its package's project index (as `torchlint check <package>` does); default: one file alone",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    corpus = Path(args.corpus)
    kinds = tuple(args.kind or KINDS)
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        sites = [s for s in all_sites(corpus, pool) if s[1] in kinds]
        strict = sum(1 for s in sites if s[1] == "sequential-rebase" and s[3] == "strict")
        if strict >= 10:
            sites = [s for s in sites if not (s[1] == "sequential-rebase" and s[3] == "loose")]
        totals = Counter(s[1] for s in sites)
        chosen = sample(sites, kinds, args.seed, args.per_package, args.max_per_kind)
        per_file: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for rel, kind, index, _ in chosen:
            per_file[rel].append((kind, index))
        jobs = sorted(per_file.items(), key=lambda item: -(corpus / item[0]).stat().st_size)
        outcomes = [
            o for result in pool.map(run_file, [(str(corpus / rel), rel, tuple(c), _root(corpus, rel, args.project)) for rel, c in jobs]) for o in result
        ]
    outcomes.sort(key=lambda o: (KINDS.index(o.kind), o.path, o.line))
    elapsed = time.perf_counter() - start
    print(report(outcomes, kinds, totals, strict, args, elapsed))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "corpus": str(corpus), "per_package": args.per_package,
            "max_per_kind": args.max_per_kind, "wall_seconds": round(elapsed, 1),
            "kinds": summary(outcomes, kinds, totals), "sequential_rebase_strict_sites": strict,
            "mutants": [asdict(o) for o in outcomes],
        }, indent=1) + "\n")
    return 0


@functools.cache
def _loader(root: str):
    """One index loader per package and process: the index is built (or read from its cache) once."""
    return project_index.loader(Path(root))


def _root(corpus: Path, rel: str, project: bool) -> str | None:
    """The package directory a corpus file belongs to, as the project root, with --project."""
    return str(corpus / Path(rel).parts[0]) if project else None


def summary(outcomes: list[Outcome], kinds: Sequence[str], totals: Counter) -> dict[str, dict]:
    out = {}
    for kind in kinds:
        mine = [o for o in outcomes if o.kind == kind]
        status = Counter(o.status for o in mine)
        clean = status["detected"] + status["missed"]
        out[kind] = {
            "sites": totals[kind], "mutants": len(mine), "not_clean": status["not-clean"], "broken": status["broken"],
            "clean_before": clean, "detected": status["detected"],
            "recall": round(status["detected"] / clean, 3) if clean else None,
            "detected_by": dict(Counter(c for o in mine for c in o.detected_by)),
        }
    return out


def report(outcomes: list[Outcome], kinds: Sequence[str], totals: Counter, strict: int, args, elapsed: float) -> str:
    rows = summary(outcomes, kinds, totals)
    lines = [
        f"mutation recall: corpus {args.corpus}, seed {args.seed}, per-package {args.per_package}, "
        f"max-per-kind {args.max_per_kind or 'none'}",
        "",
        f"{'kind':20} {'expect':11} {'sites':>6} {'mutants':>8} {'not-clean':>9} {'clean-before':>12} {'detected':>8} {'recall':>7}",
    ]
    for kind in kinds:
        r = rows[kind]
        recall = f"{r['recall']:.3f}" if r["recall"] is not None else "-"
        lines.append(
            f"{kind:20} {'/'.join(EXPECTED[kind]):11} {r['sites']:6} {r['mutants']:8} {r['not_clean']:9} "
            f"{r['clean_before']:12} {r['detected']:8} {recall:>7}"
            + (f"  (broken {r['broken']})" if r["broken"] else "")
            + (f"  by {r['detected_by']}" if kind == "drop-skip" else "")
        )
    if "sequential-rebase" in kinds:
        lines.append(
            f"sequential-rebase: {strict} strict sites (`return x + self.f(x)`)"
            + ("; fewer than 10, so forwards that add the input some other way count too" if strict < 10 else "")
        )
    misses = [o for o in outcomes if o.status in ("missed", "broken")]
    lines += ["", f"misses ({len(misses)}):"]
    for o in misses:
        instead = ", ".join(o.in_class) if o.in_class else "nothing in the class"
        if args.misses:
            lines.append(f"  {o.path}:{o.line} [{o.kind}] {o.cls}:\n{_indented(o.before)}\n    ->\n{_indented(o.after)}")
        else:
            lines.append(f"  {o.path}:{o.line} [{o.kind}] {o.cls}: {one_line(o.before)}  ->  {one_line(o.after)}")
        lines.append(f"      {'BROKEN MUTANT' if o.status == 'broken' else 'reported instead: ' + instead}")
    lines += ["", f"wall time {elapsed:.1f}s"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
