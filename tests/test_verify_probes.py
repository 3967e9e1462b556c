"""The verifier's probes, in process: each probe on a confirmed and a refuted case, and the examples."""

from __future__ import annotations

import importlib.util
import itertools
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torchlint.engine import check_source
from torchlint.verify.build import BuildError, instantiate, synthesize_input
from torchlint.verify.probes import verify_finding

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


def load(tmp_path: Path, source: str) -> tuple[dict, str]:
    """Write ``source`` to a file, import it under a fresh name, and return (namespace, path)."""
    path = tmp_path / f"case_{next(_names)}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module), str(path)


def as_dict(finding) -> dict:
    return {"code": finding.code, "line": finding.line, "column": finding.column,
            "end_line": finding.end_line, "end_column": finding.end_column, "message": finding.message}


def verify_all(tmp_path: Path, source: str, code: str) -> list[tuple[str, str]]:
    """The verdicts of every ``code`` finding that check_source reports on ``source``."""
    namespace, path = load(tmp_path, source)
    findings = [as_dict(f) for f in check_source(Path(path).read_text(), path) if f.code == code]
    assert findings, f"check_source reports no {code}"
    return [verify_finding(namespace, f, path, "cpu") for f in findings]


def verify_at(tmp_path: Path, source: str, code: str, line: int, message: str = "") -> tuple[str, str]:
    """The verdict of a hand-made ``code`` finding at ``line`` (for correct code, nothing is reported)."""
    namespace, path = load(tmp_path, source)
    finding = {"code": code, "line": line, "column": 1, "end_line": line, "end_column": 1, "message": message}
    return verify_finding(namespace, finding, path, "cpu")


DROPOUT = """
    import torch.nn as nn
    import torch.nn.functional as F

    class Head(nn.Module):
        def __init__(self, d_in=32, p=0.5):
            super().__init__()
            self.fc = nn.Linear(d_in, 10)
            self.p = p

        def forward(self, x):
            return self.fc(F.dropout(x, p=self.p{gate}))
"""


def test_dropout_confirmed_and_refuted(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, DROPOUT.format(gate=""), "TL201")
    assert verdict == "confirmed"
    assert "F.dropout ran with training=True (p=0.5) while the module was in eval(), at line 12" in evidence
    verdict, evidence = verify_at(tmp_path, DROPOUT.format(gate=", training=self.training"), "TL201", 12)
    assert verdict == "refuted", evidence


def test_dropout_line_not_reached_is_inconclusive(tmp_path):
    verdict, evidence = verify_at(tmp_path, DROPOUT.format(gate=""), "TL201", 11)
    assert verdict == "inconclusive" and "did not reach line 11" in evidence


ATTENTION = """
    import torch.nn as nn
    import torch.nn.functional as F

    class SelfAttention(nn.Module):
        def __init__(self, dim, heads=2, dropout=0.1):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, dim * 3)
            self.dropout = dropout

        def forward(self, x):
            b, n, d = x.shape
            q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(q, k, v, dropout_p={rate})
"""


def test_attention_dropout_confirmed_and_refuted(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, ATTENTION.format(rate="self.dropout"), "TL202")
    assert verdict == "confirmed" and "scaled_dot_product_attention" in evidence and "p=0.1" in evidence
    gated = ATTENTION.format(rate="self.dropout if self.training else 0.0")
    verdict, evidence = verify_at(tmp_path, gated, "TL202", 15)
    assert verdict == "refuted", evidence


UNREGISTERED = """
    import torch
    import torch.nn as nn

    class Affine(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.w = {w}
            self.layers = {layers}
            self.gamma = nn.Parameter(torch.ones(dim)){convert}

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x * self.w * self.gamma
"""
WRONG = UNREGISTERED.format(w="torch.ones(dim)", layers="[nn.Linear(dim, dim), nn.ReLU()]", convert=" * 0.5")
RIGHT = UNREGISTERED.format(w="nn.Parameter(torch.ones(dim))", layers="nn.ModuleList([nn.Linear(dim, dim)])",
                            convert="")


@pytest.mark.parametrize("code, line, name", [("TL101", 8, "w"), ("TL102", 9, "layers"), ("TL103", 10, "gamma")])
def test_unregistered_confirmed_and_refuted(tmp_path, code, line, name):
    [(verdict, evidence)] = verify_all(tmp_path, WRONG, code)
    assert verdict == "confirmed", evidence
    assert f"self.{name}" in evidence and "is not in parameters(), buffers() or state_dict()" in evidence
    assert "after .to('meta') it is still on cpu" in evidence
    verdict, evidence = verify_at(tmp_path, RIGHT, code, line, f"self.{name} ...")
    assert verdict == "refuted", evidence


def test_conversion_that_was_a_no_op_is_inconclusive(tmp_path):
    source = UNREGISTERED.format(w="None", layers="[]", convert=".to(torch.float32)")
    verdict, evidence = verify_at(tmp_path, source, "TL103", 10, "self.gamma ...")
    assert verdict == "inconclusive" and "no-op" in evidence


SEQUENTIAL = """
    import torch.nn as nn

    class ResidualBlock(nn.Sequential):
        def __init__(self, channels=8):
            super().__init__(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
{forward}
"""
SKIP_FORWARD = """
        def forward(self, x):
            return x + super().forward(x)
"""


def test_residual_without_skip_traced(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, SEQUENTIAL.format(forward=""), "TL301")
    assert verdict == "confirmed" and "no path from the input reaches the output except through the body" in evidence
    verdict, evidence = verify_at(tmp_path, SEQUENTIAL.format(forward=SKIP_FORWARD), "TL301", 4)
    assert verdict == "refuted" and "+" in evidence


BLOCK = """
    import torch.nn as nn
    import torch.nn.functional as F

    class BasicBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x):
            identity = x
            if x.sum() > -1e9:
                out = self.conv2(F.relu(self.conv1(x)))
            return F.relu(out{skip})
"""


def test_unused_skip_replaced_by_noise(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, BLOCK.format(skip=""), "TL302")
    assert verdict == "confirmed", evidence
    assert "replacing identity by noise right after line 12 leaves the output unchanged" in evidence
    verdict, evidence = verify_at(tmp_path, BLOCK.format(skip=" + identity"), "TL302", 12)
    assert verdict == "refuted" and "changes the output in eval()" in evidence


def test_untraceable_block_falls_back_to_zeroed_parameters(tmp_path):
    verdict, evidence = verify_at(tmp_path, BLOCK.format(skip=""), "TL301", 5)
    assert verdict == "confirmed" and "with every parameter zeroed the output no longer depends" in evidence
    verdict, evidence = verify_at(tmp_path, BLOCK.format(skip=" + identity"), "TL301", 5)
    assert verdict == "refuted", evidence


def test_a_skip_reused_after_it_was_added_is_still_unused(tmp_path):
    """Pre-norm layers: the first residual is added back, the second is saved and dropped; a
    graph that joins the input somewhere does not refute the second."""
    source = """
        import torch.nn as nn

        class PreNorm(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
                self.attn, self.mlp = nn.Linear(c, c), nn.Linear(c, c)

            def forward(self, x):
                residual = x
                x = residual + self.attn(self.ln1(x))
                residual = x
                return self.mlp(self.ln2(x)){skip}
    """
    verdict, evidence = verify_at(tmp_path, source.format(skip=""), "TL302", 13)
    assert verdict == "confirmed", evidence
    verdict, evidence = verify_at(tmp_path, source.format(skip=" + residual"), "TL302", 13)
    assert verdict == "refuted", evidence


def test_residual_check_ignores_joins_inside_the_body(tmp_path):
    """Dense connections inside the body (cat) and a body added to itself are no skip; a post-norm
    skip (the norm after the add) is one."""
    source = """
        import torch
        import torch.nn as nn

        class Dense(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.conv = nn.Conv2d(c, c, 3, padding=1)

            def forward(self, x):
                return torch.cat([x, self.conv(x)], 1)

        class DenseBlock(nn.Sequential):
            def __init__(self, c=8):
                super().__init__(Dense(c), Dense(2 * c), nn.Conv2d(4 * c, c, 1))

        class Doubled(nn.Module):
            def __init__(self, c=8):
                super().__init__()
                self.conv = nn.Conv2d(c, c, 3, padding=1)

            def forward(self, h):
                h = self.conv(h)
                h += h
                return h

        class PostNorm(nn.Module):
            def __init__(self, c=8):
                super().__init__()
                self.fc = nn.Linear(c, c)
                self.norm = nn.LayerNorm(c)

            def forward(self, x):
                return self.norm(x + self.fc(x))
    """
    assert verify_at(tmp_path, source, "TL301", 14)[0] == "confirmed"
    assert verify_at(tmp_path, source, "TL301", 18)[0] == "confirmed"
    verdict, evidence = verify_at(tmp_path, source, "TL301", 28)
    assert verdict == "refuted" and "+" in evidence


def test_shape_error_confirmed_refuted_and_elsewhere(tmp_path):
    wrong = (ROOT / "examples" / "residual_channels_wrong.py").read_text()
    [(verdict, evidence)] = verify_all(tmp_path, wrong, "TL304")
    assert verdict == "confirmed" and "line 23" in evidence and "must match the size of tensor b (16)" in evidence
    right = (ROOT / "examples" / "residual_channels_right.py").read_text()
    verdict, evidence = verify_at(tmp_path, right, "TL304", 20)
    assert verdict == "refuted", evidence
    verdict, evidence = verify_at(tmp_path, wrong, "TL304", 22)
    assert verdict == "inconclusive" and "not at the flagged line" in evidence


INPLACE = """
    import torch.nn as nn

    class PreActBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.bn = nn.BatchNorm2d(channels)
            self.relu = nn.ReLU(inplace=True)
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x):
            identity = x
            out = self.relu({relu_input})
            return self.conv(out) + identity
"""


def test_inplace_confirmed_and_refuted(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, INPLACE.format(relu_input="x"), "TL401")
    assert verdict == "confirmed", evidence
    assert "giving identity, x separate copies right before line 13 changes the output" in evidence
    verdict, evidence = verify_at(tmp_path, INPLACE.format(relu_input="self.bn(x)"), "TL401", 13)
    assert verdict == "refuted", evidence


LAYER_IN_FORWARD = """
    import torch.nn as nn

    class Classifier(nn.Module):
        def __init__(self, dim, classes):
            super().__init__()
            self.dim = dim
            self.classes = classes
            self.out = nn.Linear(dim, classes)

        def forward(self, x):
            return {layer}(x)
"""


def test_layer_in_forward_confirmed_and_refuted(tmp_path):
    [(verdict, evidence)] = verify_all(tmp_path, LAYER_IN_FORWARD.format(layer="nn.Linear(self.dim, self.classes)"), "TL105")
    assert verdict == "confirmed" and "builds 1 new Linear with fresh random weights" in evidence
    verdict, evidence = verify_at(tmp_path, LAYER_IN_FORWARD.format(layer="self.out"), "TL105", 12, "nn.Linear(...) ...")
    assert verdict == "refuted", evidence


def test_rule_without_probe_and_unbuildable_module(tmp_path):
    assert verify_at(tmp_path, DROPOUT.format(gate=""), "TL601", 12) == ("inconclusive", "no probe for this rule")
    source = DROPOUT.format(gate="").replace("d_in=32", "config")
    verdict, evidence = verify_at(tmp_path, source, "TL201", 12)
    assert verdict == "inconclusive" and "could not build the module" in evidence and "config" in evidence
    assert verify_at(tmp_path, "x = 1\n", "TL201", 1)[0] == "inconclusive"


def test_instantiate_uses_literal_call_site_arguments(tmp_path):
    namespace, path = load(tmp_path, """
        import torch.nn as nn

        class Stem(nn.Module):
            def __init__(self, cfg_a, cfg_b, kernel=5):
                super().__init__()
                self.conv = nn.Conv2d(cfg_a, cfg_b, kernel)

            def forward(self, x):
                return self.conv(x)

        def build():
            return Stem(3, 12, kernel=3)
    """)
    module, how = instantiate(namespace["Stem"], path)
    assert "call site" in how and module.conv.in_channels == 3 and module.conv.kernel_size == (3, 3)
    (x,) = synthesize_input(module)
    assert tuple(x.shape) == (2, 3, 32, 32)


def test_input_that_only_broadcasts_is_rejected(tmp_path):
    namespace, path = load(tmp_path, """
        import torch
        import torch.nn as nn

        class Scale(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.ones(2, 16))

            def forward(self, x):
                return x * self.w
    """)
    module, _ = instantiate(namespace["Scale"], path)
    with pytest.raises(BuildError, match="no input runs"):
        synthesize_input(module)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*_wrong.py")))
def test_wrong_examples_are_confirmed(name):
    path = str(ROOT / "examples" / name)
    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    findings = check_source(Path(path).read_text(), path)
    assert findings
    for finding in findings:
        verdict, evidence = verify_finding(vars(module), as_dict(finding), path, "cpu")
        assert verdict == "confirmed", (finding.code, evidence)
        expected = {"TL201": "ran with training=True", "TL101": "is not in parameters(), buffers() or state_dict()",
                    "TL301": "no path from the input reaches the output except through the body",
                    "TL304": f"raised at line {finding.line}"}[finding.code]
        assert expected in evidence


def test_alpha_dropout_defaults_to_eval_so_it_is_refuted(tmp_path):
    source = DROPOUT.format(gate="").replace("F.dropout(", "F.alpha_dropout(")
    verdict, evidence = verify_at(tmp_path, source, "TL201", 12)
    assert verdict == "refuted" and "training=False (p=0.5)" in evidence


def test_alpha_dropout_without_training_is_confirmed_off_in_training(tmp_path):
    """TL201's own claim for alpha dropout: it never drops, not even in train()."""
    source = DROPOUT.format(gate="").replace("F.dropout(", "F.alpha_dropout(")
    [(verdict, evidence)] = verify_all(tmp_path, source, "TL201")
    assert verdict == "confirmed" and "training=False (p=0.5) while the module was in train()" in evidence
    gated = DROPOUT.format(gate=", training=self.training").replace("F.dropout(", "F.alpha_dropout(")
    message = "F.alpha_dropout() without training=: it defaults to False, so it never drops anything"
    verdict, evidence = verify_at(tmp_path, gated, "TL201", 12, message)
    assert verdict == "refuted" and "training=True in train()" in evidence


LAYER_ARGUMENT = """
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, c, norm):
            super().__init__()
            self.norm = norm(c)
            self.fc = nn.Linear(c, c)

        def forward(self, x):
            identity = x
            return F.dropout(self.fc(self.norm(x)), p=0.5) + {skip}
"""


def test_a_layer_argument_gets_identity_which_never_refutes(tmp_path):
    verdict, evidence = verify_at(tmp_path, LAYER_ARGUMENT.format(skip="identity"), "TL201", 13)
    assert verdict == "confirmed" and "built as Block(c=16, norm=nn.Identity)" in evidence, evidence
    verdict, evidence = verify_at(tmp_path, LAYER_ARGUMENT.format(skip="identity"), "TL302", 12)
    assert verdict == "inconclusive" and evidence.startswith("refuted only when built as Block(c=16, norm=nn.Identity)")


def test_a_method_forward_does_not_call_is_called_instead(tmp_path):
    source = """
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.conv = nn.Conv2d(c, c, 3, padding=1)

            def forward(self, x):
                return self.conv(x) + x

            def forward_features(self, x):
                identity = x
                return self.conv(x)
    """
    verdict, evidence = verify_at(tmp_path, source, "TL302", 13)
    assert verdict == "confirmed" and "its forward_features() called as forward" in evidence, evidence


def test_a_sequential_that_forward_does_not_reach_is_run_on_its_own(tmp_path):
    source = """
        import torch
        import torch.nn as nn

        class SmallCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 16, 3, padding=1)
                self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
                self.head = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(128, 10))

            def forward(self, x):
                x = torch.relu(self.stem(x))
                out = self.conv2(x) + x
                return self.head(out.mean(dim=(2, 3)))
    """
    [head, _add] = verify_all(tmp_path, source, "TL304")
    verdict, evidence = head
    assert verdict == "confirmed", evidence
    assert evidence.startswith("head (Sequential) run on its own: forward on a (2, 32) tensor raised in the Linear built at line 10")


def test_a_configuration_argument_answers_each_attribute_by_its_name(tmp_path):
    source = """
        import torch.nn as nn
        import torch.nn.functional as F

        class Head(nn.Module):
            def __init__(self, input_dim, args):
                super().__init__()
                self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(args.num_layers))
                self.out = nn.Linear(input_dim, args.n_classes)
                self.p = args.dropout

            def forward(self, x):
                for layer in self.layers:
                    x = F.dropout(layer(x), p=self.p)
                return self.out(x)
    """
    [(verdict, evidence)] = verify_all(tmp_path, source, "TL201")
    assert verdict == "confirmed", evidence
    assert "args=<config: num_layers=2, n_classes=10, dropout=0.5>" in evidence


def test_further_inputs_named_like_a_time_step_or_labels(tmp_path):
    source = """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Denoiser(nn.Module):
            def __init__(self, dim=32, classes=10):
                super().__init__()
                self.time = nn.Linear(1, dim)
                self.label = nn.Embedding(classes, dim)
                self.net = nn.Linear(dim, dim)

            def forward(self, x, t, y):
                h = x + self.time(t[:, None]) + self.label(y)
                return self.net(F.dropout(h, p=0.1))
    """
    [(verdict, evidence)] = verify_all(tmp_path, source, "TL201")
    assert verdict == "confirmed", evidence
    assert "with t as time, y as label" in evidence
