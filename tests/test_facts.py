"""ModuleFacts: the behaviour rule authors rely on (names, module classes, attributes, flow, guards)."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from torchlint.facts import ModuleFacts, is_module_base

SDPA = "torch.nn.functional.scaled_dot_product_attention"
DROPOUT = "torch.nn.functional.dropout"


def facts(source: str, module_name: str | None = None) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(source)), module_name)


def callees(source: str, module_name: str | None = None) -> list[str | None]:
    """The qualified name of every call, in source order."""
    f = facts(source, module_name)
    return [f.call_qualname(c) for c in f.calls]


def cls(f: ModuleFacts, name: str):
    return next(c for c in f.classes if c.name == name)


def fn(f: ModuleFacts, name: str):
    return next(x for x in f.functions if x.name == name)


def call_named(f: ModuleFacts, name: str):
    """The first call whose callee's source text ends with ``name``."""
    return next(c for c in f.calls if cst.Module([]).code_for_node(c.node.func).endswith(name))


# --- imports resolve to qualified names ------------------------------------------------------


@pytest.mark.parametrize(
    "imports, call",
    [
        ("import torch.nn.functional as F", "F.dropout(x)"),
        ("from torch.nn import functional as F", "F.dropout(x)"),
        ("from torch.nn.functional import dropout as drop", "drop(x)"),
        ("from torch.nn.functional import dropout", "dropout(x)"),
        ("import torch", "torch.nn.functional.dropout(x)"),
        ("import torch.nn", "torch.nn.functional.dropout(x)"),
        ("import torch.nn.functional", "torch.nn.functional.dropout(x)"),
        ("from torch import nn", "nn.functional.dropout(x)"),
        ("import torch.nn as nn", "nn.functional.dropout(x)"),
        ("from torch.nn.functional import *", "dropout(x)"),
        ("from torch.nn import *", "functional.dropout(x)"),
    ],
)
def test_import_spellings_resolve(imports, call):
    assert callees(f"{imports}\n{call}\n") == [DROPOUT]


def test_import_inside_a_function_resolves_there_only():
    source = """
    def f(x):
        import torch.nn.functional as F
        return F.dropout(x)

    def g(x):
        return F.dropout(x)
    """
    assert callees(source) == [DROPOUT, None]


def test_import_inside_a_method_resolves_in_nested_functions():
    source = """
    class M:
        def forward(self, x):
            from torch.nn import functional as F
            return (lambda t: F.dropout(t))(x)
    """
    assert DROPOUT in callees(source)


def test_unknown_names_do_not_resolve():
    assert callees("dropout(x)\nfoo.bar(x)\n(lambda: 1)()\n") == [None, None, None]


# --- local names shadow torch's --------------------------------------------------------------


def test_parameter_shadows_import():
    source = """
    import torch.nn.functional as F
    def f(F, x):
        return F.dropout(x)
    """
    assert callees(source) == [None]


def test_local_assignment_in_method_shadows_import():
    source = """
    import torch.nn.functional as F
    class M:
        def forward(self, x):
            F = self.functions
            return F.dropout(x)
        def other(self, x):
            return F.dropout(x)
    """
    assert callees(source) == [None, DROPOUT]


def test_module_level_def_shadows_import():
    source = """
    from torch.nn.functional import dropout
    def dropout(x):
        return x
    dropout(1)
    """
    assert callees(source) == [None]


def test_module_level_def_shadows_star_import():
    source = """
    from torch.nn.functional import *
    def dropout(x):
        return x
    dropout(1)
    """
    assert callees(source) == [None]


def test_fallback_to_none_does_not_shadow():
    source = """
    try:
        import torch.nn.functional as F
    except ImportError:
        F = None
    F.dropout(x)
    """
    assert callees(source) == [DROPOUT]


def test_class_attribute_does_not_shadow_in_methods():
    source = """
    import torch.nn.functional as F
    class M:
        F = functions
        F.dropout(1)
        def forward(self, x):
            return F.dropout(x)
    """
    assert callees(source) == [None, DROPOUT]


def test_global_declaration_rebinds_the_module_name():
    source = """
    import torch.nn.functional as F
    def setup():
        global F
        F = make_functions()
    def use(x):
        return F.dropout(x)
    """
    assert callees(source)[-1] is None


def test_global_import_inside_a_function_binds_the_module_name():
    source = """
    F = None
    def setup():
        global F
        import torch.nn.functional as F
    def use(x):
        return F.dropout(x)
    """
    assert callees(source) == [DROPOUT]


def test_comprehension_target_does_not_shadow_outside_the_comprehension():
    source = """
    import torch.nn.functional as F
    def f(xs):
        ys = [F for F in xs]
        return F.dropout(ys)
    """
    assert callees(source) == [DROPOUT]


# --- relative imports ---------------------------------------------------------------------------


def test_relative_imports_with_a_known_module_name():
    source = """
    from . import layers
    from .blocks import Block
    from ..core import Base
    layers.Attn()
    Block()
    Base()
    """
    assert callees(source, "pkg.models.net") == ["pkg.models.layers.Attn", "pkg.models.blocks.Block", "pkg.core.Base"]


def test_relative_imports_without_a_module_name_stay_relative():
    source = """
    from . import layers
    from .blocks import Block
    from .. import core
    layers.Attn()
    Block()
    core.Base()
    """
    assert callees(source) == [".layers.Attn", ".blocks.Block", "..core.Base"]


def test_relative_import_beyond_the_top_does_not_fall_back_to_a_star_import():
    source = """
    from torch.nn.functional import *
    from ...x import dropout
    dropout(1)
    """
    assert callees(source, "pkg.mod") == [None]


def test_relative_import_does_not_resolve_to_torch():
    f = facts("from .torch import nn\nclass A(nn.Module):\n    pass\n")
    assert not cls(f, "A").is_module


# --- nn.Module detection -------------------------------------------------------------------------


def module_status(source: str, name: str) -> bool:
    return cls(facts(source), name).is_module


@pytest.mark.parametrize(
    "imports, base",
    [
        ("import torch.nn as nn", "nn.Module"),
        ("import torch", "torch.nn.Module"),
        ("from torch import nn", "nn.Module"),
        ("from torch.nn import Module as M", "M"),
        ("from torch.nn import Module", "Module"),
        ("import torch.nn as nn", "nn.Sequential"),
        ("import torch.nn as nn", "nn.ModuleList"),
        ("import torch.nn as nn", "nn.ModuleDict"),
        ("import torch.nn as nn", "nn.Linear"),
        ("from torch.nn.modules.module import Module", "Module"),
        ("import pytorch_lightning as pl", "pl.LightningModule"),
        ("from pytorch_lightning import LightningModule", "LightningModule"),
        ("import lightning.pytorch as pl", "pl.LightningModule"),
        ("import lightning as L", "L.LightningModule"),
        ("from lightning import LightningModule", "LightningModule"),
        ("from pytorch_lightning.core import LightningModule", "LightningModule"),
        ("import transformers", "transformers.PreTrainedModel"),
        ("from transformers import PreTrainedModel", "PreTrainedModel"),
        ("from transformers.modeling_utils import PreTrainedModel", "PreTrainedModel"),
        ("from transformers.models.bert.modeling_bert import BertPreTrainedModel", "BertPreTrainedModel"),
        ("from transformers import BertModel", "BertModel"),
        ("from transformers import AutoformerModel", "AutoformerModel"),
    ],
)
def test_module_bases(imports, base):
    assert module_status(f"{imports}\nclass A({base}):\n    pass\n", "A")


@pytest.mark.parametrize(
    "imports, base",
    [
        ("import torch", "torch.utils.data.Dataset"),
        ("from torch.utils.data import Dataset", "Dataset"),
        ("", "object"),
        ("", ""),
        ("", "Exception"),
        ("", "dict"),
        ("from enum import Enum", "Enum"),
        ("import torch", "torch.autograd.Function"),
        ("import torch.nn as nn", "nn.Parameter"),
        ("import torch", "torch.Tensor"),
        ("import torch.nn as nn", "nn.utils.rnn.PackedSequence"),
        ("from torch.nn.attention import SDPBackend", "SDPBackend"),
        ("from transformers import PretrainedConfig", "PretrainedConfig"),
        ("from transformers import TFPreTrainedModel", "TFPreTrainedModel"),
        ("from transformers import FlaxPreTrainedModel", "FlaxPreTrainedModel"),
        ("from transformers import DataCollatorForLanguageModeling", "DataCollatorForLanguageModeling"),
    ],
)
def test_not_module_bases(imports, base):
    bases = f"({base})" if base else ""
    # even with a forward(): a known non-module base is not overridden by evidence
    assert not module_status(f"{imports}\nclass A{bases}:\n    def forward(self, x):\n        return x\n", "A")


def test_builtin_and_no_base_classes_are_known_non_modules():
    f = facts("class A:\n    pass\nclass B(Exception):\n    pass\nclass C(object):\n    pass\n")
    assert [cls(f, n).module_status for n in "ABC"] == [False, False, False]


def test_local_base_at_any_depth_and_defined_later():
    source = """
    import torch.nn as nn
    class D(C):
        pass
    class C(B):
        pass
    class B(A):
        pass
    class A(nn.Module):
        pass
    class Plain(object):
        pass
    class E(Plain):
        pass
    """
    f = facts(source)
    assert [cls(f, n).is_module for n in "ABCD"] == [True] * 4
    assert cls(f, "D").module_evidence == "subclass of C"
    assert not cls(f, "E").is_module


def test_base_cycle_does_not_loop():
    f = facts("class A(B):\n    pass\nclass B(A):\n    pass\n")
    assert not cls(f, "A").is_module


@pytest.mark.parametrize(
    "body, evidence",
    [
        ("def forward(self, x):\n        return x", "defines forward()"),
        ("def __init__(self):\n        self.fc = nn.Linear(1, 2)", "assigns a layer to self.fc"),
        ("def __init__(self):\n        self.register_buffer('b', None)", "calls self.register_buffer()"),
        ("def __init__(self):\n        self.block = Block()", "assigns a layer to self.block"),
    ],
)
def test_unknown_base_with_evidence(body, evidence):
    source = f"""
import torch.nn as nn
from somewhere import Base
class A(Base):
    {body}
class Block(nn.Module):
    pass
"""
    a = cls(facts(source), "A")
    assert a.is_module
    assert a.module_evidence == evidence


def test_unknown_base_without_evidence():
    source = """
    from somewhere import Base
    class A(Base):
        def __init__(self):
            self.size = 3
    """
    a = cls(facts(source), "A")
    assert not a.is_module
    assert a.module_status is None


def test_evidence_through_a_local_class_with_unknown_base():
    source = """
    import torch.nn as nn
    from somewhere import Base
    class A(Base):
        def __init__(self):
            self.b = B()
    class B(Base):
        def forward(self, x):
            return x
    """
    assert module_status(source, "A")


def test_is_module_base_table():
    assert is_module_base("torch.nn.Conv2d")
    assert is_module_base("torch.jit.ScriptModule")
    assert is_module_base("torch.nn.Parameter") is False
    assert is_module_base("torch.optim.Adam") is False
    assert is_module_base("numpy.ndarray") is None
    assert is_module_base("lightning_fabric.LightningModule") is None


# --- the attribute table ---------------------------------------------------------------------------


def test_attribute_table():
    source = """
    import torch.nn as nn
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3)
            self.a, self.b = nn.ReLU(), nn.Tanh()
            self.c, self.d = pair
            self.k = [nn.ReLU()]
            self.e: nn.Module = nn.Identity()
            self.f: int
            setattr(self, "g", nn.GELU())
            setattr(other, "h", nn.GELU())
            other.i = 1
            self.count += 1
            def helper():
                self.j = nn.SiLU()
            helper()
    """
    m = cls(facts(source), "M")
    code = cst.Module([]).code_for_node
    table = {a.name: (code(a.value) if a.value is not None else None) for a in m.attr_assigns}
    assert table == {
        "conv1": "nn.Conv2d(3, 16, 3)",
        "a": "nn.ReLU()",
        "b": "nn.Tanh()",
        "c": None,
        "d": None,
        "k": "[nn.ReLU()]",
        "e": "nn.Identity()",
        "f": None,
        "g": "nn.GELU()",
        "count": None,
        "j": "nn.SiLU()",
    }
    assert all(a.method.name == "__init__" for a in m.attr_assigns)
    assert len(m.assigns("conv1")) == 1


# --- per-function assignments and reads ------------------------------------------------------------


def test_assignments_and_reads():
    source = """
    def forward(self, x, ys):
        identity = x
        out = [y * identity for y in ys]
        z = lambda: out
        def inner():
            return x
        del identity
        total = 0
        total += 1
        a, b = x
        return z, inner
    """
    f = fn(facts(source), "forward")
    assert set(f.assignments) == {"identity", "out", "z", "total", "a", "b"}
    assert len(f.reads["identity"]) == 1  # the comprehension element; `del` is not a read
    assert "out" in f.reads  # inside a lambda
    assert len(f.reads["x"]) == 3  # the assignment, the nested function, the unpacking
    assert "total" in f.reads  # augmented assignment reads
    assert "y" in f.reads
    assert "a" not in f.reads
    assert f.params == ["self", "x", "ys"]


def test_comprehension_element_read_after_target_bound():
    source = """
    def forward(self, xs):
        return {k: v for k, v in xs.items() if v}
    """
    f = fn(facts(source), "forward")
    assert len(f.reads["v"]) == 2
    assert "k" in f.reads


def test_reads_in_nested_function_count_for_both():
    source = """
    def outer(a):
        def inner(b):
            return a + b
        return inner
    """
    f = facts(source)
    assert "a" in fn(f, "outer").reads and "a" in fn(f, "inner").reads
    assert "b" in fn(f, "outer").reads
    assert "a" not in fn(f, "inner").assignments


def test_binding_positions_are_not_reads():
    source = """
    def f(v):
        def g():
            nonlocal v
            v = 1
        match v:
            case {"k": 1, **rest}:
                pass
            case Point(x=0, y=yy):
                pass
            case [first, *others] if first:
                pass
            case str() as s:
                pass
        return g
    """
    reads = fn(facts(source), "f").reads
    for name in ("rest", "x", "y", "yy", "others", "s"):
        assert name not in reads, name
    assert "Point" in reads and "first" in reads


# --- call guards -----------------------------------------------------------------------------------


def guards_of(source: str, name: str) -> list[tuple[str, bool]]:
    f = facts(source)
    code = cst.Module([]).code_for_node
    return [(code(g.test), g.positive) for g in call_named(f, name).guards]


GUARDED = """
def forward(self, x):
    if self.training:
        a()
    elif x:
        b()
    else:
        c()
    d() if self.training else e()
    while x:
        w()
    else:
        w_else()
    after()
"""


@pytest.mark.parametrize(
    "name, guards",
    [
        ("a", [("self.training", True)]),
        ("b", [("self.training", False), ("x", True)]),
        ("c", [("self.training", False), ("x", False)]),
        ("d", [("self.training", True)]),
        ("e", [("self.training", False)]),
        ("w", [("x", True)]),
        ("w_else", []),
        ("after", []),
    ],
)
def test_call_guards(name, guards):
    assert guards_of(GUARDED, name) == guards


# --- the instance --------------------------------------------------------------------------------


def test_instance_of_methods_and_nested_functions():
    source = """
    class M:
        def forward(this, x):
            def inner(t):
                return t
            def rebinds(self, t):
                return t
            def reassigns(t):
                this = t
                return this
            return inner
        @staticmethod
        def s(x):
            pass
        @classmethod
        def c(cls, x):
            pass
    def free(self):
        pass
    """
    f = facts(source)
    assert fn(f, "forward").instance == "this"
    assert fn(f, "inner").instance == "this"
    assert fn(f, "rebinds").instance == "this"  # a different name is not a rebinding
    assert fn(f, "reassigns").instance is None
    assert fn(f, "s").instance is None
    assert fn(f, "c").instance is None
    assert fn(f, "free").instance is None
    assert fn(f, "inner").cls is cls(f, "M") and not fn(f, "inner").is_method


def test_self_rebound_in_nested_function():
    source = """
    class M:
        def forward(self, x):
            def inner(self):
                self.y = 1
            self.z = 2
    """
    f = facts(source)
    assert fn(f, "inner").instance is None
    assert [a.name for a in cls(f, "M").attr_assigns] == ["z"]


# --- newer syntax ----------------------------------------------------------------------------------


def test_python_312_syntax_and_match_do_not_crash():
    source = """
    import torch.nn as nn
    import torch.nn.functional as F
    type Alias = list[int]
    class A[T](nn.Module):
        def forward[U](self, x: U) -> T:
            match x:
                case [a, b]:
                    return F.dropout(a)
                case _:
                    return x
    """
    f = facts(source)
    assert cls(f, "A").is_module
    assert DROPOUT in [f.call_qualname(c) for c in f.calls]


def test_comprehension_target_shadows_inside_the_comprehension():
    source = """
    import torch.nn.functional as F
    def f(fs, x):
        return [F.dropout(x) for F in fs], [y for y in fs if (n := y)], n
    """
    f = facts(source)
    assert [f.call_qualname(c) for c in f.calls] == [None]
    assert "n" in fn(f, "f").assignments and "y" not in fn(f, "f").assignments


def test_star_import_does_not_capture_builtins():
    source = """
    from torch.nn import *
    class Error(Exception):
        def forward(self, x):
            return x
    class Net(Module):
        pass
    """
    f = facts(source)
    assert not cls(f, "Error").is_module
    assert cls(f, "Net").is_module


def test_project_class_answers_from_the_index(tmp_path):
    from torchlint import index

    (tmp_path / "setup.cfg").write_text("", encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from .blocks import Pair\n", encoding="utf-8")
    (tmp_path / "pkg" / "blocks.py").write_text(
        "import torch.nn as nn\n\nclass Pair(nn.Module):\n    def forward(self, x, y):\n        return x\n",
        encoding="utf-8",
    )
    idx = index.build(tmp_path, use_cache=False)
    f = ModuleFacts(cst.parse_module("x = 1\n"), "pkg.model", project=lambda: idx)
    entry = f.project_class("pkg.Pair")  # through the re-export
    assert entry is not None and entry.defines_forward and entry.forward_inputs == 2
    assert f.project_class("pkg.Missing") is None
    assert facts("x = 1\n").project_class("pkg.Pair") is None  # no index


def test_relative_import_in_a_package_init_is_the_package_itself():
    source = "from . import layers\nfrom .blocks import Res\nfrom .. import top\n"
    facts = ModuleFacts(cst.parse_module(source), "pkg.sub", is_package=True)
    scope = facts.module_scope
    assert facts.resolve_name("layers", scope) == "pkg.sub.layers"
    assert facts.resolve_name("Res", scope) == "pkg.sub.blocks.Res"
    assert facts.resolve_name("top", scope) == "pkg.top"


def test_self_attribute_uses_carry_their_context():
    f = facts("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.randn(3)
                self.fc = nn.Linear(3, 3)

            def forward(self, x):
                self.count += 1
                y = self.fc(x) + self.w.to(x.device)
                return torch.cat([y, self.w]), self.fc.weight.sum()
    """)
    net = f.classes[0]
    seen = [(u.name, u.method, u.context) for u in f.attr_uses([net])]
    assert seen == [
        ("w", "__init__", "store"),
        ("fc", "__init__", "store"),
        ("count", "forward", "store"),
        ("fc", "forward", "called"),
        ("w", "forward", "moved"),
        ("w", "forward", "read"),
        ("fc", "forward", "read"),
    ]
    assert f.attr_uses([net]) is not f.attr_uses([net], with_locals=True)
    assert net.uses() is net.uses()  # computed once
    local = {u.name for u in f.attr_uses([net], with_locals=True) if u.local}
    assert {"x", "y", "torch"} <= local
