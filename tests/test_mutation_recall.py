"""The measuring scripts of benchmarks/: each mutation kind changes our own small sources as a user
would expect, score_labels joins findings with labels, and blind_set scores a set against its
truth (no corpus, no torch)."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import libcst as cst
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


mutation_recall = _load("mutation_recall")
score_labels = _load("score_labels")
blind_set = _load("blind_set")


def mutants(kind: str, source: str) -> list[str]:
    module = cst.parse_module(textwrap.dedent(source))
    out = [mutation_recall.mutate(module, site) for site in mutation_recall.find_sites(module, [kind])]
    for text in out:
        ast.parse(text)
    return out


def body(source: str) -> str:
    return textwrap.dedent(source)


def test_dropout_training_keyword_and_positional():
    source = """\
        import torch.nn.functional as F
        from torch import nn
        from torch.nn.functional import dropout2d as d2

        class Block(nn.Module):
            def forward(self, x):
                x = F.dropout(x, p=0.1, training=self.training)
                x = d2(x, 0.2, self.training, True)
                if self.training:
                    x = F.dropout(x, 0.3, self.training)
                return nn.functional.alpha_dropout(x, 0.1, training=self.training and self.use)

        def outside(x, training):
            return F.dropout(x, 0.5, training=training)
        """
    first, second, third = mutants("dropout-training", source)
    assert "x = F.dropout(x, p=0.1)\n" in first
    assert "x = d2(x, 0.2, inplace=True)\n" in second
    assert "return nn.functional.alpha_dropout(x, 0.1)\n" in third


def test_sdpa_gate_inline_and_local():
    source = """\
        import torch.nn.functional as F
        from torch import nn

        class Attention(nn.Module):
            def forward(self, q, k, v):
                a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
                p = self.p if self.training else 0.0
                b = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
                rate = 0.0
                if self.training:
                    rate = self.attn_drop
                return F.scaled_dot_product_attention(a, b, v, None, rate)
        """
    inline, local, guarded = mutants("sdpa-gate", source)
    assert "dropout_p=self.p)\n" in inline
    assert "    p = self.p\n" in local
    assert "F.scaled_dot_product_attention(a, b, v, None, self.attn_drop)" in guarded


def test_parameter_unwrap():
    source = """\
        import torch
        import torch.nn as nn

        class Layer(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.w = nn.Parameter(torch.randn(d, d) * 0.02)
                self.b = torch.nn.Parameter(data=torch.zeros(d), requires_grad=False)
                self.given = nn.Parameter(d)
        """
    w, b = mutants("parameter-unwrap", source)
    assert "self.w = torch.randn(d, d) * 0.02\n" in w
    assert "self.b = torch.zeros(d)\n" in b


def test_buffer_to_attr():
    source = """\
        import torch
        from torch import nn

        class Norm(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.register_buffer("mean", torch.zeros(d))
                self.register_buffer(name="steps", tensor=torch.tensor(0), persistent=False)
                self.register_buffer("mask", None)
                self.register_buffer("given", d)
        """
    mean, steps = mutants("buffer-to-attr", source)
    assert "self.mean = torch.zeros(d)\n" in mean
    assert "self.steps = torch.tensor(0)\n" in steps


def test_modulelist_to_list():
    source = """\
        from torch import nn

        class Net(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.a = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
                self.b = nn.ModuleList(nn.Linear(2, 2) for _ in range(n))
                self.c = nn.ModuleList()
                self.d = nn.ModuleDict({"x": nn.Linear(2, 2)})
                self.e = nn.ModuleDict()
        """
    a, b, c, d, e = mutants("modulelist-to-list", source)
    assert "self.a = [nn.Linear(2, 2), nn.ReLU()]\n" in a
    assert "self.b = list(nn.Linear(2, 2) for _ in range(n))\n" in b
    assert "self.c = []\n" in c
    assert 'self.d = {"x": nn.Linear(2, 2)}\n' in d
    assert "self.e = {}\n" in e


def test_drop_skip():
    source = """\
        from torch import nn

        class Block(nn.Module):
            def forward(self, x):
                identity = x
                out = self.conv(x)
                out = out + identity
                return out

        class Down(nn.Module):
            def forward(self, x):
                shortcut = self.down(x)
                out = self.body(x)
                out += shortcut
                return out

        class Pre(nn.Module):
            def forward(self, h):
                residual = h
                h = self.norm(h)
                return self.f(h) + residual

        class NotASkip(nn.Module):
            def forward(self, x):
                y = self.a(x)
                identity = x
                return identity + identity + y
        """
    first, second, third = mutants("drop-skip", source)
    assert "out = out\n" in first
    assert "        out = self.body(x)\n        pass\n" in second
    assert "return self.f(h)\n" in third


def test_sequential_rebase():
    source = """\
        import torch.nn as nn

        class ResidualBlock(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.f = nn.Linear(d, d)

            def forward(self, x):
                return x + self.f(x)

        class Plain(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.f = nn.Linear(d, d)

            def forward(self, x):
                return x + self.f(x)
        """
    (rebased,) = mutants("sequential-rebase", source)
    assert "class ResidualBlock(nn.Sequential):" in rebased
    assert rebased.count("def forward") == 1  # Plain keeps its own


def test_batchnorm_training():
    source = """\
        import torch.nn.functional as F
        from torch import nn

        class BN(nn.Module):
            def forward(self, x):
                a = F.batch_norm(x, self.rm, self.rv, self.w, self.b, training=self.training, momentum=0.1)
                return F.batch_norm(a, self.rm, self.rv, self.w, self.b, self.training or not self.track, 0.1, 1e-5)
        """
    kw, positional = mutants("batchnorm-training", source)
    assert "F.batch_norm(x, self.rm, self.rv, self.w, self.b, momentum=0.1)" in kw
    assert "F.batch_norm(a, self.rm, self.rv, self.w, self.b, momentum=0.1, eps=1e-5)" in positional


def test_sample_is_reproducible_and_bounded():
    sites = [(f"pkg{p}/m.py", "drop-skip", i, "") for p in range(3) for i in range(10)]
    one = mutation_recall.sample(sites, ["drop-skip"], 14, 4, 0)
    assert one == mutation_recall.sample(sites, ["drop-skip"], 14, 4, 0)
    assert len(one) == 12 and {s[0] for s in one} == {"pkg0/m.py", "pkg1/m.py", "pkg2/m.py"}
    assert len(mutation_recall.sample(sites, ["drop-skip"], 14, 4, 5)) == 5


def test_score_labels_precision_and_unlabelled(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    (corpus / "pkg-1.0").mkdir(parents=True)
    labels = tmp_path / "labels"
    labels.mkdir()

    def finding(code: str, line: int) -> dict:
        return {"code": code, "message": f"{code} here", "filename": str(corpus / "pkg-1.0" / "m.py"), "location": {"row": line, "column": 1}}

    findings = [finding("TL301", 3), finding("TL301", 9), finding("TL301", 20), finding("TL302", 5), finding("TL302", 7)]
    (tmp_path / "out.json").write_text(json.dumps(findings))
    rows = [
        {"path": "pkg-1.0/m.py", "line": 3, "code": "TL301", "label": "bug", "reason": "r"},
        {"path": "pkg-1.0/m.py", "line": 9, "code": "TL301", "label": "false-alarm", "reason": "r"},
        {"path": "pkg-1.0/m.py", "line": 20, "code": "TL301", "label": "worth-a-look", "reason": "r"},
        {"path": "pkg-1.0/m.py", "line": 5, "code": "TL302", "label": "bug", "reason": "r"},
        {"path": "pkg-1.0/m.py", "line": 99, "code": "TL302", "label": "bug", "reason": "moved"},
    ]
    (labels / "TL301.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (labels / "TL302.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))

    scored = score_labels.score(score_labels.finding_keys(findings, corpus, "TL3"), score_labels.read_labels(labels))
    assert scored["TL301"]["precision"] == pytest.approx(2 / 3)
    assert (scored["TL302"]["labelled"], scored["TL302"]["precision"]) == (1, 1.0)

    assert score_labels.main(["--corpus", str(corpus), "--select", "TL3", "--labels", str(labels), "--from-json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    unlabelled = out.split("unlabelled findings (1):\n")[1].split("\n\n")[0]
    assert unlabelled.strip() == "pkg-1.0/m.py:7 TL302 TL302 here"
    assert "stale labels, matching no finding (1):\n  pkg-1.0/m.py:99 TL302 [bug]" in out


def test_batchnorm_training_through_a_local():
    source = """\
        import torch.nn.functional as F
        from torch import nn

        class BN(nn.Module):
            def forward(self, x):
                if self.training:
                    bn_training = True
                else:
                    bn_training = self.running_mean is None
                return F.batch_norm(x, self.rm, self.rv, self.w, self.b, bn_training, 0.1, self.eps)
        """
    (mutant,) = mutants("batchnorm-training", source)
    assert "F.batch_norm(x, self.rm, self.rv, self.w, self.b, momentum=0.1, eps=self.eps)" in mutant


def test_a_tensor_spanning_lines_keeps_parsing_out_of_its_call():
    source = """\
        import torch
        from torch import nn

        class Bank(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.register_buffer(
                    "memory",
                    torch.rand(n, 4)
                    .mul_(2)
                    .add_(-1),
                )
                self.register_buffer(
                    "table",
                    torch.zeros(
                        n, 4
                    ),
                )
        """
    memory, table = mutants("buffer-to-attr", source)
    assert "self.memory = (torch.rand(n, 4)\n" in memory
    assert "self.table = torch.zeros(\n" in table


def test_blind_set_hits_misses_and_false_alarms(tmp_path, capsys):
    files = {
        "bugs/a_dropout.py": """\
            import torch.nn as nn
            import torch.nn.functional as F


            class Net(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1)
        """,
        "bugs/b_missed.py": "x = 1\n",
        "clean/c_alarm.py": """\
            import torch.nn as nn
            import torch.nn.functional as F


            class Head(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.2)
        """,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    truth = [
        {"file": "bugs/a_dropout.py", "bug": "TL201", "line": 7},
        {"file": "bugs/b_missed.py", "bug": "TL101", "line": 1, "spelling": "none"},
        {"file": "clean/c_alarm.py", "bug": None, "line": None},
    ]
    (tmp_path / "TRUTH.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truth))
    assert blind_set.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TL201      1     1   1.000" in out
    assert "TL101      1     0   0.000" in out
    assert "miss: bugs/b_missed.py:1 TL101" in out
    assert "false alarms in the 1 files without a bug: 1" in out
    assert "false alarm: clean/c_alarm.py:7 TL201" in out
