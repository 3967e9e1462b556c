"""TL303 sequential-arity: an ``nn.Sequential`` element that cannot take one tensor and return one.

``nn.Sequential.forward`` calls each element with the previous element's output, one argument:
``x = module(x)``. Reported elements: a lambda, a function or an uninstantiated class (the
constructor raises TypeError: not a Module); a module whose forward needs two or more inputs
(``nn.MultiheadAttention``, ``nn.Transformer``, ``nn.Bilinear``, a class of this file or project);
a module that returns a tuple (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``, ``nn.LSTMCell``, a max-pool
with ``return_indices=True``, a local class whose forward returns a tuple) followed by a torch
layer, which then receives the tuple.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    CallInfo,
    ClassInfo,
    code_of,
    FunctionInfo,
    ModuleFacts,
    Scope,
    find_arg,
    self_attr,
    walk,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.residual_without_skip import SEQUENTIALS, _class_chain
from torchlint.screen import TreeInfo, ast_nodes, child_nodes, own_nodes

ORDERED_DICTS = {"collections.OrderedDict", "typing.OrderedDict"}
# torch.nn layers whose forward has two or more required inputs.
MULTI_INPUT = {
    "MultiheadAttention": "query, key and value",
    "Transformer": "src and tgt",
    "TransformerDecoder": "tgt and memory",
    "TransformerDecoderLayer": "tgt and memory",
    "Bilinear": "input1 and input2",
    "CosineSimilarity": "x1 and x2",
    "PairwiseDistance": "x1 and x2",
    "MaxUnpool1d": "input and indices",
    "MaxUnpool2d": "input and indices",
    "MaxUnpool3d": "input and indices",
}
TUPLE_OUTPUT = {"LSTM": "(output, (h_n, c_n))", "GRU": "(output, h_n)", "RNN": "(output, h_n)", "LSTMCell": "(h, c)"}
# Pools that return ``(output, indices)`` with return_indices=True: name -> its position.
POOLS_WITH_INDICES = {
    "MaxPool1d": 4, "MaxPool2d": 4, "MaxPool3d": 4,
    "AdaptiveMaxPool1d": 1, "AdaptiveMaxPool2d": 1, "AdaptiveMaxPool3d": 1,
    "FractionalMaxPool2d": 3, "FractionalMaxPool3d": 3,
}
NO_FORWARD = {"ModuleList", "ModuleDict", "ParameterList", "ParameterDict"}
# Function namespaces: ``torch.relu``, ``F.relu``, ``torch.special.expit`` ...
FUNCTION_NAMESPACES = {"torch", "torch.nn.functional", "torch.special", "torch.linalg", "torch.fft"}


class SequentialArity(Rule):
    code = "TL303"
    name = "sequential-arity"
    summary = "nn.Sequential holding a lambda, a function, or a module that takes or returns more than one tensor"
    needles = ("Sequential",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A Sequential (or ``super().__init__`` in a class with a base) holding an element that
        may be reported: a lambda, or a name, attribute or call whose root name is not a local
        of the function around (a local's value is unknown to the rule)."""
        return info.mentions(SEQUENTIALS) and any(_may_construct(info, c) for c in info.calls) and _may_hold_a_problem(info)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, owner in _sequential_constructions(facts):
            scope = call.scope or facts.module_scope
            elements = _elements(facts, call.node, scope)
            called = owner is not None or _maybe_called(call)
            for i, element in enumerate(elements):
                if element is None:
                    continue
                message = _not_a_module(facts, element, scope)
                if message is None and called:
                    message = _arity_problem(facts, element, scope, elements[i + 1 :])
                if message:
                    yield Hit(element, message, call.cls)


def _sequential_constructions(facts: ModuleFacts) -> Iterator[tuple[CallInfo, ClassInfo | None]]:
    """``nn.Sequential(...)`` calls in functions, and ``super().__init__(...)`` in a direct subclass
    of nn.Sequential that keeps its forward (then the class itself is what gets called)."""
    for call in facts.calls:
        fn = call.function
        if facts.call_qualname(call) in SEQUENTIALS:
            yield call, None
        elif fn and fn.name == "__init__" and fn.cls and _is_super_init(call.node) and _chains_like_sequential(facts, fn.cls):
            yield call, fn.cls


def _is_super_init(call: cst.Call) -> bool:
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value == "__init__"
        and isinstance(func.value, cst.Call)
        and isinstance(func.value.func, cst.Name)
        and func.value.func.value == "super"
    )


def _chains_like_sequential(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """A direct subclass of nn.Sequential that keeps its forward (a subclass of a subclass hands
    its ``super().__init__`` arguments to its parent's own ``__init__``)."""
    return "forward" not in cls.methods and any(facts.qualname(b, cls.scope) in SEQUENTIALS for b in cls.bases)


def _elements(facts: ModuleFacts, call: cst.Call, scope: Scope) -> list[cst.BaseExpression | None]:
    """The elements in order; None for a run of elements that cannot be seen (``*layers``)."""
    args = call.args
    if len(args) == 1 and not args[0].star and isinstance(args[0].value, cst.Call):
        inner = args[0].value
        if facts.qualname(inner.func, scope) in ORDERED_DICTS:
            return _ordered_dict_values(inner)
    out: list[cst.BaseExpression | None] = []
    for arg in args:
        if arg.keyword is not None:
            continue
        if arg.star == "*":
            if isinstance(arg.value, (cst.List, cst.Tuple)):
                out += [None if isinstance(e, cst.StarredElement) else e.value for e in arg.value.elements]
            else:
                out.append(None)
        elif not arg.star:
            out.append(arg.value)
    return out


def _ordered_dict_values(call: cst.Call) -> list[cst.BaseExpression | None]:
    out: list[cst.BaseExpression | None] = []
    for arg in call.args:
        if arg.keyword is not None:
            out.append(arg.value)
        elif not arg.star and isinstance(arg.value, (cst.List, cst.Tuple)):
            for e in arg.value.elements:
                pair = e.value
                ok = isinstance(pair, (cst.Tuple, cst.List)) and len(pair.elements) == 2 and not isinstance(e, cst.StarredElement)
                out.append(pair.elements[1].value if ok else None)
        else:
            out.append(None)
    return out


# --- what an element is ------------------------------------------------------------------------


def _not_a_module(facts: ModuleFacts, element: cst.BaseExpression, scope: Scope) -> str | None:
    """A lambda, a function or a class where an instance belongs: add_module raises TypeError."""
    if isinstance(element, cst.Lambda):
        return (
            "a lambda in nn.Sequential: Sequential only accepts nn.Module instances and raises TypeError "
            "when built; wrap it in a small nn.Module (or use nn.Flatten/nn.Unflatten/nn.Identity)"
        )
    if not isinstance(element, (cst.Name, cst.Attribute)):
        return None
    if isinstance(element, cst.Name) and _bound_in_function(element.value, scope):
        return None  # a local variable: its value is unknown
    if facts.is_module_class_expr(element, scope):
        return (
            f"the class {code_of(element)} in nn.Sequential, not an instance: Sequential raises TypeError "
            f"when built; call it: {code_of(element)}(...)"
        )
    q = facts.qualname(element, scope)
    leaf = q.rsplit(".", 1)[-1] if q else ""
    if q and q.rsplit(".", 1)[0] in FUNCTION_NAMESPACES and leaf[:1].islower():
        return (
            f"the function {code_of(element)} in nn.Sequential: Sequential only accepts nn.Module instances "
            "and raises TypeError when built; use the module form (nn.ReLU(), nn.Flatten(), ...)"
        )
    if isinstance(element, cst.Name) and _module_level_function(facts, element.value):
        return (
            f"the function {element.value} in nn.Sequential: Sequential only accepts nn.Module instances "
            "and raises TypeError when built; wrap it in an nn.Module"
        )
    return None


def _arity_problem(
    facts: ModuleFacts, element: cst.BaseExpression, scope: Scope, rest: list[cst.BaseExpression | None]
) -> str | None:
    if not isinstance(element, cst.Call):
        return None
    q = facts.qualname(element.func, scope)
    torch_leaf = q.rsplit(".", 1)[1] if q and q.startswith("torch.nn.") else None
    if torch_leaf in MULTI_INPUT:
        return (
            f"nn.{torch_leaf} in nn.Sequential needs {MULTI_INPUT[torch_leaf]}, but Sequential calls each "
            "element with one tensor: forward raises TypeError; call it yourself in a module's forward"
        )
    if torch_leaf in NO_FORWARD:
        return (
            f"nn.{torch_leaf} in nn.Sequential has no forward: calling the Sequential raises "
            "NotImplementedError; use nn.Sequential(*layers) to chain the layers"
        )
    returns = None
    if torch_leaf in TUPLE_OUTPUT:
        returns = f"nn.{torch_leaf} returns a tuple {TUPLE_OUTPUT[torch_leaf]}"
    elif torch_leaf in POOLS_WITH_INDICES:
        flag, _ = find_arg(element, "return_indices", POOLS_WITH_INDICES[torch_leaf])
        if flag is not None and isinstance(flag.value, cst.Name) and flag.value.value == "True":
            returns = f"nn.{torch_leaf}(return_indices=True) returns a tuple (output, indices)"
    else:
        local = facts.local_class(element.func)
        if local is not None and local.is_module:
            forward = _forward_of(facts, local)
            if forward is not None:
                required = _required_inputs(forward)
                if len(required) >= 2:
                    return (
                        f"{local.name} in nn.Sequential: its forward needs {len(required)} inputs "
                        f"({', '.join(required)}), but Sequential passes one tensor: forward raises "
                        "TypeError; give the extra inputs defaults or call it yourself"
                    )
                if _returns_tuple(forward):
                    returns = f"{local.name}.forward returns a tuple"
        elif q and local is None:
            inputs = _project_forward_inputs(facts, q)
            if inputs is not None and inputs >= 2:
                return (
                    f"{q.rsplit('.', 1)[1]} in nn.Sequential: its forward needs {inputs} inputs, but "
                    "Sequential passes one tensor: forward raises TypeError"
                )
    if returns is None:
        return None
    following = _next_torch_layer(facts, rest, scope)
    if following is None:
        return None  # last, or followed by a module that may pick the tensor out of the tuple
    return (
        f"{returns}, and nn.Sequential passes that tuple to the next layer (nn.{following}), which "
        "fails on it; select the tensor in a small module (e.g. `output, _ = self.rnn(x)`) or end "
        "the Sequential here"
    )


def _next_torch_layer(facts: ModuleFacts, rest: list[cst.BaseExpression | None], scope: Scope) -> str | None:
    """The torch.nn layer that receives the tuple (Identity passes it on); None when unknown."""
    for element in rest:
        if not isinstance(element, cst.Call):
            return None
        q = facts.qualname(element.func, scope)
        if not (q and q.startswith("torch.nn.") and facts.is_module_class_expr(element.func, scope)):
            return None
        leaf = q.rsplit(".", 1)[1]
        if leaf == "Identity":
            continue
        if q in SEQUENTIALS or leaf in NO_FORWARD:
            return None
        return leaf
    return None


def _forward_of(facts: ModuleFacts, cls: ClassInfo) -> FunctionInfo | None:
    """The class's forward, from it or a base in this file; None if it comes from elsewhere."""
    for c in _class_chain(facts, cls):
        if "forward" in c.methods:
            return c.methods["forward"]
        if any(facts.qualname(b, c.scope) in SEQUENTIALS for b in c.bases):
            return None
    return None


def _required_inputs(fn: FunctionInfo) -> list[str]:
    """Parameters after self that have no default (positional and keyword-only)."""
    assert isinstance(fn.node, cst.FunctionDef)
    params = fn.node.params
    positional = [*params.posonly_params, *params.params]
    if positional and positional[0].name.value == fn.self_name:
        positional = positional[1:]
    return [p.name.value for p in (*positional, *params.kwonly_params) if p.default is None]


def _returns_tuple(fn: FunctionInfo) -> bool:
    """Every ``return`` of the forward (not of nested functions) returns a tuple literal."""
    values: list[cst.BaseExpression | None] = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Return):
            values.append(node.value)
        return not isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef))

    walk(fn.node.body, enter)
    return bool(values) and all(
        isinstance(v, cst.Tuple) and len(v.elements) >= 2 and not any(isinstance(e, cst.StarredElement) for e in v.elements)
        for v in values
    )


def _project_forward_inputs(facts: ModuleFacts, qualname: str) -> int | None:
    found = facts.project_class(qualname)
    if found is None or not found.defines_forward:
        return None
    return found.forward_inputs


# --- is the Sequential called? ---------------------------------------------------------------


def _maybe_called(call: CallInfo) -> bool:
    """False only for a Sequential kept in ``self.<attr>`` that the class only indexes or
    iterates (a container of layers, each called by hand)."""
    cls = call.cls
    names = [a.name for a in cls.attr_assigns if a.value is call.node] if cls else []
    if not names:
        return True
    uses = 0
    contained: set[int] = set()  # ids of the ``self.<attr>`` nodes that are indexed or iterated

    for method in cls.methods.values():
        self_name = method.self_name

        def is_attr(node: cst.CSTNode) -> bool:
            return self_attr(node, self_name) == names[0]

        def enter(node: cst.CSTNode) -> None:
            nonlocal uses
            if is_attr(node):
                uses += 1
            elif isinstance(node, cst.Subscript) and is_attr(node.value):
                contained.add(id(node.value))
            elif isinstance(node, cst.For) and is_attr(node.iter):
                contained.add(id(node.iter))
            elif isinstance(node, cst.AssignTarget) and is_attr(node.target):
                contained.add(id(node.target))

        if self_name:
            walk(method.node.body, enter)
    return uses == 0 or uses > len(contained)


# --- small helpers -------------------------------------------------------------------------------


def _bound_in_function(name: str, scope: Scope | None) -> bool:
    while scope is not None and scope.kind != "module":
        if name in scope.bound:
            return True
        scope = scope.parent
    return False


def _module_level_function(facts: ModuleFacts, name: str) -> bool:
    if name in facts.module_scope.imports or facts.local_class(cst.Name(name)) is not None:
        return False
    defs = [
        stmt for stmt in facts.module.body
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value == name
    ]
    return bool(defs) and all(isinstance(d, cst.FunctionDef) and not d.decorators for d in defs)




# --- the screen ---------------------------------------------------------------------------------


def _may_hold_a_problem(info: TreeInfo) -> bool:
    todo: list[tuple[ast.AST, frozenset[str]]] = [(info.tree, frozenset())]
    while todo:
        node, bound = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = _function_locals(node)
            todo.extend((child, inner) for child in node.body)
            todo.extend((child, bound) for child in child_nodes(node) if child not in node.body)
            continue
        if isinstance(node, ast.Call) and (_may_construct(info, node)):
            if any(_may_be_reported(info, e, bound) for e in _screen_elements(node)):
                return True
        todo.extend((child, bound) for child in child_nodes(node))
    return False


def _function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Names that certainly resolve to a local of the function (no qualified name): its
    parameters and what its own scope assigns, but not comprehension targets (their own scope),
    ``global`` names, or names it also imports."""
    args = fn.args
    found = {a.arg for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg) if a is not None}
    nodes = own_nodes(fn)
    in_comprehensions = {id(n) for c in nodes if isinstance(c, ast.comprehension) for n in ast_nodes(c.target)}
    found.update(n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in in_comprehensions)
    for n in nodes:
        if isinstance(n, ast.Global):
            found.difference_update(n.names)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            found.difference_update((a.asname or a.name).split(".")[0] for a in n.names)
    return frozenset(found)


def _may_construct(info: TreeInfo, call: ast.Call) -> bool:
    """A call that may build a Sequential: of a name whose last part is (or is imported as)
    Sequential, or ``super().__init__(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "__init__" and isinstance(func.value, ast.Call):
        inner = func.value.func
        return isinstance(inner, ast.Name) and inner.id == "super"
    return "Sequential" in info.callee_leaves(call)


def _screen_elements(call: ast.Call) -> list[ast.expr]:
    """What ``_elements`` may take as elements: the positional arguments, the items of a starred
    literal, and for one call argument (an OrderedDict) its keyword values and pairs' values."""
    out: list[ast.expr] = []
    for arg in call.args:
        if isinstance(arg, ast.Starred):
            if isinstance(arg.value, (ast.List, ast.Tuple)):
                out += [e for e in arg.value.elts if not isinstance(e, ast.Starred)]
        else:
            out.append(arg)
    if len(call.args) == 1 and isinstance(call.args[0], ast.Call):
        inner = call.args[0]
        out += [k.value for k in inner.keywords if k.arg is not None]
        for arg in inner.args:
            if isinstance(arg, (ast.List, ast.Tuple)):
                out += [e.elts[1] for e in arg.elts if isinstance(e, (ast.Tuple, ast.List)) and len(e.elts) == 2]
    return out


def _may_be_reported(info: TreeInfo, element: ast.expr, bound: frozenset[str]) -> bool:
    """A lambda; a name, attribute or call whose root name is not a local (a call of a class of
    this file whatever its name is bound to)."""
    if isinstance(element, ast.Lambda):
        return True
    if isinstance(element, ast.Call):
        if isinstance(element.func, ast.Name) and element.func.id in info.top_class_names:
            return True
        element = element.func
    root = element
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id not in bound
