"""The unsafe fixes: each ``before`` becomes exactly ``after`` under ``--unsafe-fixes``, the result
parses and has no finding of the rule left; ``--fix`` alone applies none of them."""

from __future__ import annotations

import ast
import textwrap

import pytest

from torchlint import fixes
from torchlint.engine import check_source


def _fixable(code: str, before: str) -> list:
    return [f for f in check_source(before, codes=[code]) if f.code == code and f.fix is not None]


def _apply_unsafe(code: str, before: str) -> str:
    findings = _fixable(code, before)
    assert findings, f"no fixable {code} finding"
    assert all(f.fix.applicability == "unsafe" for f in findings)
    chosen, deferred = fixes.choose(findings, unsafe=True)
    assert not deferred
    text = fixes.apply_edits(before, [e for f in chosen for e in f.fix.edits])
    return fixes.with_imports(text, [i for f in chosen for i in f.fix.imports])


def _case(code: str, before: str, after: str, name: str):
    return pytest.param(code, textwrap.dedent(before), textwrap.dedent(after), id=f"{code}-{name}")


CASES = [
    _case(
        "TL101",
        """\
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.randn(3, 4)
                self.mask = torch.ones(
                    4,
                    4,
                )

            def forward(self, x):
                return (x @ self.w) * self.mask
        """,
        """\
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(3, 4))
                self.register_buffer("mask", torch.ones(
                    4,
                    4,
                ))

            def forward(self, x):
                return (x @ self.w) * self.mask
        """,
        "buffer-and-parameter",
    ),
    _case(
        "TL101",
        """\
        import torch


        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.ones(8, requires_grad=True)

            def forward(self, x):
                return x * self.scale
        """,
        """\
        import torch


        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.ones(8, requires_grad=True))

            def forward(self, x):
                return x * self.scale
        """,
        "torch-nn-spelled-out",
    ),
    _case(
        "TL101",
        """\
        from torch import randn
        from torch.nn import Module
        import torch.nn.functional as F


        class M(Module):
            def __init__(self):
                super().__init__()
                self.w = randn(4, 4)

            def forward(self, x):
                return F.linear(x, self.w)
        """,
        """\
        from torch import nn, randn
        from torch.nn import Module
        import torch.nn.functional as F


        class M(Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(randn(4, 4))

            def forward(self, x):
                return F.linear(x, self.w)
        """,
        "adds-nn-import",
    ),
    _case(
        "TL102",
        """\
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.layers = [nn.Linear(4, 4) for _ in range(n)]
                self.heads = {"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)}
                self.scales = [nn.Parameter(torch.ones(4)), nn.Parameter(torch.zeros(4))]
                self.blocks = []
                for i in range(n):
                    self.blocks.append(nn.Conv2d(3, 3, 1))
                self.pair = nn.Linear(1, 1), nn.Linear(1, 1)

            def forward(self, x):
                for layer in [*self.layers, *self.blocks, *self.pair]:
                    x = layer(x)
                return self.heads["a"](x) * self.scales[0]
        """,
        """\
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])
                self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)})
                self.scales = nn.ParameterList([nn.Parameter(torch.ones(4)), nn.Parameter(torch.zeros(4))])
                self.blocks = nn.ModuleList()
                for i in range(n):
                    self.blocks.append(nn.Conv2d(3, 3, 1))
                self.pair = nn.ModuleList((nn.Linear(1, 1), nn.Linear(1, 1)))

            def forward(self, x):
                for layer in [*self.layers, *self.blocks, *self.pair]:
                    x = layer(x)
                return self.heads["a"](x) * self.scales[0]
        """,
        "containers",
    ),
    _case(
        "TL102",
        """\
        from torch.nn import Linear, Module


        class M(Module):
            def __init__(self):
                super().__init__()
                self.layers = [Linear(4, 4), Linear(4, 4)]

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        """,
        """\
        from torch.nn import Linear, Module
        from torch import nn


        class M(Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([Linear(4, 4), Linear(4, 4)])

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        """,
        "adds-nn-import",
    ),
    _case(
        "TL103",
        """\
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self, device):
                super().__init__()
                self.w = nn.Parameter(torch.randn(3, 4)).to(device)
                self.b = nn.Parameter(torch.zeros(4) + 1, requires_grad=False).cuda()
                self.c = nn.Parameter(data=torch.ones(4)).double()

            def forward(self, x):
                return x @ self.w + self.b + self.c
        """,
        """\
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self, device):
                super().__init__()
                self.w = nn.Parameter(torch.randn(3, 4).to(device))
                self.b = nn.Parameter((torch.zeros(4) + 1).cuda(), requires_grad=False)
                self.c = nn.Parameter(data=torch.ones(4).double())

            def forward(self, x):
                return x @ self.w + self.b + self.c
        """,
        "conversions",
    ),
    _case(
        "TL402",
        """\
        import torch

        dev = torch.device("cuda")
        w = torch.randn(3, requires_grad=True).to(dev)
        b = torch.zeros(3, requires_grad=True).cuda()
        d = torch.zeros(
            3,
            requires_grad=True,
        ).to(device="cuda:0")
        opt = torch.optim.SGD([w, b, d], lr=0.1)
        """,
        """\
        import torch

        dev = torch.device("cuda")
        w = torch.randn(3, requires_grad=True, device=dev)
        b = torch.zeros(3, requires_grad=True, device="cuda")
        d = torch.zeros(
            3,
            requires_grad=True,
            device="cuda:0",
        )
        opt = torch.optim.SGD([w, b, d], lr=0.1)
        """,
        "to-and-cuda",
    ),
    _case(
        "TL503",
        """\
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, 4))

            def forward(self, x):
                return self.body.forward(x)


        model = Net()
        y = model.forward(
            torch.zeros(1, 4),
        )
        """,
        """\
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, 4))

            def forward(self, x):
                return self.body(x)


        model = Net()
        y = model(
            torch.zeros(1, 4),
        )
        """,
        "calls",
    ),
    _case(
        "TL306",
        """\
        from torch import nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 16, 3, padding=1)
                self.bn = nn.BatchNorm2d(16)
                self.fc = nn.Linear(16, 8, True)
                self.bn2 = nn.BatchNorm1d(8)
                self.body = nn.Sequential(
                    nn.Conv2d(
                        16,
                        16,
                        3,
                    ),
                    nn.BatchNorm2d(16),
                )

            def forward(self, x):
                x = self.body(self.bn(self.conv(x)))
                return self.bn2(self.fc(x.mean((2, 3))))
        """,
        """\
        from torch import nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
                self.bn = nn.BatchNorm2d(16)
                self.fc = nn.Linear(16, 8, False)
                self.bn2 = nn.BatchNorm1d(8)
                self.body = nn.Sequential(
                    nn.Conv2d(
                        16,
                        16,
                        3,
                        bias=False,
                    ),
                    nn.BatchNorm2d(16),
                )

            def forward(self, x):
                x = self.body(self.bn(self.conv(x)))
                return self.bn2(self.fc(x.mean((2, 3))))
        """,
        "bias",
    ),
    _case(
        "TL601",
        """\
        import torch


        def load(path):
            a = torch.load(path)
            b = torch.load(
                path,
                map_location="cpu",
            )
            c = torch.load(path, weights_only=False)
            d = torch.load(path, map_location="cpu",)
            return a, b, c, d
        """,
        """\
        import torch


        def load(path):
            a = torch.load(path, weights_only=True)
            b = torch.load(
                path,
                map_location="cpu",
                weights_only=True,
            )
            c = torch.load(path, weights_only=True)
            d = torch.load(path, map_location="cpu", weights_only=True,)
            return a, b, c, d
        """,
        "weights-only",
    ),
]


@pytest.mark.parametrize(("code", "before", "after"), CASES)
def test_unsafe_fix(code, before, after):
    fixed = _apply_unsafe(code, before)
    assert fixed == after
    ast.parse(fixed)
    assert not [f for f in check_source(fixed, codes=[code]) if f.code == code]


@pytest.mark.parametrize(("code", "before", "after"), CASES)
def test_not_applied_without_unsafe_fixes(code, before, after):
    chosen, _ = fixes.choose(_fixable(code, before), unsafe=False)
    assert chosen == []


def test_windows_line_endings_kept():
    before = "import torch\r\n\r\nstate = torch.load(\r\n    'a.pt',\r\n)\r\n"
    assert _apply_unsafe("TL601", before) == "import torch\r\n\r\nstate = torch.load(\r\n    'a.pt',\r\n    weights_only=True,\r\n)\r\n"


NO_FIX = [
    pytest.param(
        "TL101",
        """\
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self, big):
                super().__init__()
                self.mask = torch.ones(4)
                if big:
                    self.mask = torch.ones(8)

            def forward(self, x):
                return x * self.mask
        """,
        id="TL101-assigned-twice",
    ),
    pytest.param(
        "TL102",
        """\
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.heads = {0: nn.Linear(4, 2), 1: nn.Linear(4, 3)}

            def forward(self, x, k):
                return self.heads[k](x)
        """,
        id="TL102-int-keys",
    ),
    pytest.param(
        "TL102",
        """\
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.steps = [nn.Linear(4, 4), print]

            def forward(self, x):
                for step in self.steps:
                    x = step(x)
                return x
        """,
        id="TL102-not-all-modules",
    ),
    pytest.param(
        "TL103",
        """\
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.ones(4)) * 0.02

            def forward(self, x):
                return x * self.w
        """,
        id="TL103-arithmetic",
    ),
    pytest.param(
        "TL402",
        """\
        import torch

        w = torch.randn(3, requires_grad=True).to(torch.float64)
        v = torch.randn(3, requires_grad=True).to(other)
        u = torch.randn(3, requires_grad=True, device="cpu").cuda()
        opt = torch.optim.SGD([w, v, u], lr=0.1)
        """,
        id="TL402-dtype-tensor-or-device-given",
    ),
    pytest.param(
        "TL601",
        """\
        import pickle

        import torch

        state = torch.load("a.pt", pickle_module=pickle)
        """,
        id="TL601-pickle-module",
    ),
]


@pytest.mark.parametrize(("code", "source"), NO_FIX)
def test_no_fix_offered(code, source):
    findings = [f for f in check_source(textwrap.dedent(source), codes=[code]) if f.code == code]
    assert findings
    assert all(f.fix is None for f in findings)
