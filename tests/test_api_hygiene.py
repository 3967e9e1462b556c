"""The TL7xx family (what TorchFix checked): every table entry is found, target-version decides
which apply, fixes are exact, findings sit where flake8, noqa and editors expect them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from conftest import run_cli
from test_fixes_safe import fixed
from test_flake8 import flake8, parsed
from torchlint.deprecations import table
from torchlint.engine import check_source
from torchlint.rules.torchvision_pretrained import builders

FAMILY = {"TL000", "TL701", "TL702", "TL703", "TL704", "TL705", "TL706", "TL707", "TL708", "TL709"}


def codes(source: str, target=None) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in check_source(source, codes=FAMILY, target_version=target)]


@pytest.mark.parametrize("entry", table().values(), ids=lambda e: e.name)
def test_every_table_entry_is_reported_as_call_and_as_import(entry):
    module, _, leaf = entry.name.rpartition(".")
    code = "TL701" if entry.removed else "TL702"
    source = f"import {module}\nfrom {module} import {leaf}\n\nvalue = {entry.name}(x)\n"
    assert codes(source) == [(2, code), (4, code)]


def test_target_version_decides_which_entries_apply():
    source = "import torch\n\nscaler = torch.cuda.amp.GradScaler()\nx = torch.solve(b, A)\nq = torch.qr(A)\n"
    assert codes(source) == [(3, "TL702"), (4, "TL701"), (5, "TL702")]
    # torch.amp.GradScaler is 2.3+, its advice is 2.4+; torch.solve was only deprecated before 1.13
    assert codes(source, (2, 1)) == [(4, "TL701"), (5, "TL702")]
    assert codes(source, (1, 12)) == [(4, "TL702"), (5, "TL702")]
    assert codes(source, (1, 8)) == []


def test_multi_name_import_reports_each_name_at_its_column():
    found = check_source("from torch import solve, qr, symeig\n", codes=FAMILY)
    assert [(f.line, f.column, f.code) for f in found] == [(1, 19, "TL701"), (1, 26, "TL702"), (1, 30, "TL701")]


def test_noqa_on_a_multi_name_import_silences_only_its_codes():
    found = check_source("from torch import solve, qr  # noqa: TL701\n", codes=FAMILY)
    assert [(f.column, f.code) for f in found] == [(26, "TL702")]


def test_flake8_columns_are_the_clis(tmp_path):
    (tmp_path / "m.py").write_text("import torch\n\nQ, R = torch.qr(A)\ny = torch.log(1 + x)  # noqa\n", encoding="utf-8")
    found = parsed(flake8("--torchlint-extend-select", "TL702,TL705", "m.py", cwd=tmp_path).stdout)
    assert [(line, col, code) for line, col, code, _ in found] == [(3, 8, "TL702")]


def test_cli_exits_1_and_ignores_noqa_only_where_written(tmp_path):
    (tmp_path / "m.py").write_text("import torch\n\nQ, R = torch.qr(A)\nP = torch.qr(B)  # noqa: TL702\n", encoding="utf-8")
    result = run_cli("check", "--isolated", "--output-format", "concise", "--select", "TL7", "m.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("m.py:3:8: TL702 [*] calling torch.qr")
    assert "m.py:4:" not in result.stdout


def test_target_version_config_and_flag(tmp_path):
    (tmp_path / "m.py").write_text("import torch\n\nscaler = torch.cuda.amp.GradScaler()\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\ntarget-version = "2.1"\nextend-select = ["TL702"]\n', encoding="utf-8")
    assert run_cli("check", "m.py", cwd=tmp_path).returncode == 0
    assert run_cli("check", "--target-version", "2.4", "m.py", cwd=tmp_path).returncode == 1
    bad = run_cli("check", "--target-version", "two", "m.py", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--target-version" in bad.stderr and "'two'" in bad.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.torchlint]\ntarget-version = 2.4\n", encoding="utf-8")
    bad = run_cli("check", "m.py", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and 'target-version must be a PyTorch version such as "2.4", got 2.4' in bad.stderr


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    source = "from functorch import vmap, grad, jacrev\nfrom torch import solve, qr, norm, svd\nimport torch\nx = torch.norm(y)\n"
    (tmp_path / "m.py").write_text(source, encoding="utf-8")
    runs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-m", "torchlint", "check", "--isolated", "--select", "TL7", "--output-format", "json", "m.py"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        runs.add(out.stdout)
    assert len(runs) == 1


# --- fixes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "code", "unsafe"),
    [
        ("import torch as th\nq = th.qr(A)\n", "import torch as th\nq = th.linalg.qr(A)\n", "TL702", False),
        ("import torch\no = torch.ger(u, v)\n", "import torch\no = torch.outer(u, v)\n", "TL702", False),
        ("import functorch\nf = functorch.vmap(g)\n", "import functorch\nimport torch\n\nf = torch.func.vmap(g)\n", "TL702", False),
        ("from functorch import vmap, grad as g\n", "from torch.func import vmap, grad as g\n", "TL702", False),
        ("import torch\ns = torch.cuda.amp.GradScaler(2.0**10)\n", 'import torch\ns = torch.amp.GradScaler("cuda", 2.0**10)\n', "TL702", False),
        ("import torch\nwith torch.cuda.amp.autocast(enabled=e):\n    pass\n", 'import torch\nwith torch.amp.autocast("cuda", enabled=e):\n    pass\n', "TL702", True),
        ("import torch\nL = torch.cholesky(A)\n", "import torch\nL = torch.linalg.cholesky(A)\n", "TL702", True),
        ("from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x)\n", "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x, use_reentrant=False)\n", "TL703", True),
        ("from torch.utils.data._utils.collate import default_collate\n", "from torch.utils.data import default_collate\n", "TL704", False),
        # (log(1 + x) + exp(z)) - 1: the subtraction is not of the exponential
        ("import torch\ny = torch.log(1 + x) + torch.exp(z) - 1\n", "import torch\ny = torch.log1p(x) + torch.exp(z) - 1\n", "TL705", True),
        ("import torch\ny = 2 * (torch.exp(z) - 1)\n", "import torch\ny = 2 * (torch.expm1(z))\n", "TL705", True),
        (
            "from torchvision.models import resnet50\nm = resnet50(pretrained=True)\n",
            "from torchvision.models import ResNet50_Weights, resnet50\nm = resnet50(weights=ResNet50_Weights.IMAGENET1K_V1)\n",
            "TL706",
            False,
        ),
        (
            "import torchvision\nm = torchvision.models.segmentation.fcn_resnet50(pretrained=p, pretrained_backbone=False)\n",
            "import torchvision\nfrom torchvision.models.segmentation import FCN_ResNet50_Weights\n\n"
            "m = torchvision.models.segmentation.fcn_resnet50(weights=FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 if p else None, weights_backbone=None)\n",
            "TL706",
            False,
        ),
        ("import torchvision.models as models\n", "from torchvision import models\n", "TL708", False),
    ],
)
def test_fix(before, after, code, unsafe):
    result = fixed(before, code, unsafe)
    assert result == after
    ast.parse(result)
    assert not [f for f in check_source(result) if f.code == code]


@pytest.mark.parametrize(
    "source",
    [
        "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x, **kw)\n",  # may carry use_reentrant
        "import torch\nr = torch.range(0, 10)\n",  # torch.arange differs: end excluded, integer dtype
        "import torch\nn = torch.norm(A)\n",  # torch.linalg.norm's matrix defaults differ
        "import torch\nQ = torch.qr(A, some=False)\n",
        "import torch\nwith torch.cuda.amp.autocast(True):\n    pass\n",  # positional order differs
        "from torch import qr\nQ = qr(A)\n",  # the leaf name changes: the import cannot just move
        "from torchvision.models import resnet50\nm = resnet50(pretrained=True, weights=None)\n",
        "import torchvision\nm = torchvision.models.quantization.resnet50(pretrained=True, quantize=True)\n",
        "import torchvision\nResNet50_Weights = 1\nm = torchvision.models.resnet50(pretrained=True)\n",
    ],
)
def test_no_fix_where_meaning_would_change(source):
    found = check_source(source, codes=FAMILY)
    checkpoint_with_kwargs = "**kw" in source
    assert found or checkpoint_with_kwargs
    if "ResNet50_Weights = 1" in source:  # the enum's name is taken: spelled through torchvision
        assert "torchvision.models.ResNet50_Weights.IMAGENET1K_V1" in found[0].fix.edits[0].content
        return
    assert all(f.fix is None for f in found)


def test_every_torchvision_weights_entry_names_an_enum_member():
    for key, legacy in builders().items():
        assert set(legacy) <= {"pretrained", "pretrained_backbone"}, key
        for where in legacy.values():
            if where:
                package, _, member = where.partition(":")
                assert package.startswith("torchvision.models") and member.count(".") == 1, (key, where)


def test_tl704_and_tl706_honour_target_version():
    source = (
        "import torchvision\nfrom torch.utils.data._utils.collate import default_collate\n\n"
        "model = torchvision.models.resnet50(pretrained=True)\n"
    )
    assert codes(source) == [(2, "TL704"), (4, "TL706")]
    assert codes(source, (1, 12)) == [(2, "TL704"), (4, "TL706")]
    assert codes(source, (1, 11)) == [(2, "TL704")]
    assert codes(source, (1, 10)) == []
