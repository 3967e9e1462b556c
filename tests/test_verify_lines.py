"""No verdict stands unless the flagged line ran: for every probe, a finding in a branch the input
does not take is inconclusive ("line N did not run ..."), and the same code with the branch taken
gets the probe's real verdict."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torchlint.verify.probes import PROBES, verify_finding
from torchlint.verify.tracing import lines_that_count

_names = itertools.count()

# {taken} is the branch condition: "False" leaves the flagged line out, "True" runs it. The
# condition reads the input (or a string option), so no boolean option flipped by the builder
# reaches it. The flagged line is marked "# flagged".
UNTAKEN = "x.shape[-1] == 999"
TAKEN = "x.shape[-1] != 999"
CASES = {
    "TL101": ("""
        class M(nn.Module):
            def __init__(self, dim=8, variant="{variant}"):
                super().__init__()
                if variant == "legacy":
                    self.w = torch.ones(dim)  # flagged
                else:
                    self.w = nn.Parameter(torch.ones(dim))

            def forward(self, x):
                return x * self.w
    """, "confirmed"),
    "TL102": ("""
        class M(nn.Module):
            def __init__(self, dim=8, variant="{variant}"):
                super().__init__()
                if variant == "legacy":
                    self.layers = [nn.Linear(dim, dim)]  # flagged
                else:
                    self.layers = nn.ModuleList([nn.Linear(dim, dim)])

            def forward(self, x):
                return self.layers[0](x)
    """, "confirmed"),
    "TL103": ("""
        class M(nn.Module):
            def __init__(self, dim=8, variant="{variant}"):
                super().__init__()
                if variant == "legacy":
                    self.gamma = nn.Parameter(torch.ones(dim)) * 0.5  # flagged
                else:
                    self.gamma = nn.Parameter(torch.ones(dim))

            def forward(self, x):
                return x * self.gamma
    """, "confirmed"),
    "TL105": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.dim = dim
                self.out = nn.Linear(dim, dim)

            def forward(self, x):
                if {cond}:
                    return nn.Linear(self.dim, self.dim)(x)  # flagged
                return self.out(x)
    """, "confirmed"),
    "TL201": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.fc = nn.Linear(dim, dim)

            def forward(self, x):
                if {cond}:
                    return F.dropout(self.fc(x), p=0.5)  # flagged
                return F.dropout(self.fc(x), p=0.5, training=self.training)
    """, "confirmed"),
    "TL202": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.qkv = nn.Linear(dim, 3 * dim)

            def forward(self, x):
                q, k, v = self.qkv(x).chunk(3, dim=-1)
                if {cond}:
                    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)  # flagged
                return F.scaled_dot_product_attention(q, k, v)
    """, "confirmed"),
    "TL204": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.fc = nn.Linear(dim, dim)

            def forward(self, x):
                if {cond}:
                    return F.dropout(self.fc(x), p=0.5, training=True)  # flagged
                return F.dropout(self.fc(x), p=0.5, training=self.training)
    """, "confirmed"),
    "TL301": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.body = nn.Linear(dim, dim)

            def forward(self, x):
                if {cond}:
                    return self.body(x)  # flagged
                return x + self.body(x)
    """, None),
    "TL302": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.body = nn.Linear(dim, dim)

            def forward(self, x):
                if {cond}:
                    identity = x  # flagged
                    return self.body(x)
                return x + self.body(x)
    """, "confirmed"),
    "TL304": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.conv = nn.Conv2d(dim, 16, 3, padding=1)
                self.bn = nn.BatchNorm2d(32)

            def forward(self, x):
                if {cond}:
                    return self.bn(self.conv(x))  # flagged
                return self.conv(x)
    """, "confirmed"),
    "TL401": ("""
        class M(nn.Module):
            def __init__(self, dim=8):
                super().__init__()
                self.bn = nn.BatchNorm2d(dim)
                self.relu = nn.ReLU(inplace=True)

            def forward(self, x):
                identity = x
                if {cond}:
                    return self.relu(x) + identity  # flagged
                return self.relu(self.bn(x)) + identity
    """, "confirmed"),
}
HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def load(tmp_path: Path, source: str) -> tuple[dict, str, int]:
    path = tmp_path / f"branch_{next(_names)}.py"
    path.write_text(HEADER + textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "# flagged" in text)
    return vars(module), str(path), line


def verdict(tmp_path: Path, code: str, source: str) -> tuple[str, str, int]:
    namespace, path, line = load(tmp_path, source)
    message = "nn.Linear(self.dim, self.dim) builds a layer in forward" if code == "TL105" else ""
    finding = {"code": code, "line": line, "column": 1, "end_line": line, "end_column": 1, "message": message}
    return (*verify_finding(namespace, finding, path, "cpu"), line)


def test_every_probe_has_a_case():
    assert set(CASES) >= set(PROBES) - {"TL301"} | {"TL302"}


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_line_that_did_not_run_is_never_refuted_nor_confirmed(tmp_path, code):
    source, _ = CASES[code]
    result, evidence, line = verdict(tmp_path, code, source.format(cond=UNTAKEN, variant="new"))
    assert result == "inconclusive", evidence
    assert f"line {line} did not run" in evidence or f"did not reach line {line}" in evidence, evidence


@pytest.mark.parametrize("code", sorted(c for c, (_, taken) in CASES.items() if taken))
def test_the_same_line_taken_gets_the_probes_verdict(tmp_path, code):
    source, expected = CASES[code]
    result, evidence, _ = verdict(tmp_path, code, source.format(cond=TAKEN, variant="legacy"))
    assert result == expected, evidence


def test_lines_that_count():
    tree = ast.parse(textwrap.dedent("""
        class Block(nn.Module):
            def forward(self, x):
                y = f(
                    x)
                if y:
                    return y
                return x

        class Seq(nn.Sequential):
            pass
    """))
    assert lines_that_count(tree, 4) == {4, 5}
    assert lines_that_count(tree, 5) == {4, 5}
    assert lines_that_count(tree, 6) == {6}
    assert lines_that_count(tree, 3) == {4, 5, 6, 7, 8}
    assert lines_that_count(tree, 2) == {4, 5, 6, 7, 8}
    assert lines_that_count(tree, 10) is None
