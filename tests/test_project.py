"""Project-wide knowledge: classes, bases and modules resolved across the project's files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchlint import index

DROPOUT_FORWARD = """\
    def forward(self, x):
        return F.dropout(x, 0.5)
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def codes(cli, *args: str, cwd: Path) -> list[tuple[str, int, str]]:
    result = cli("check", "--output-format", "json", *args, cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return [(Path(f["filename"]).name, f["location"]["row"], f["code"]) for f in json.loads(result.stdout)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'demo'\n",
            "demo/__init__.py": "",
            "demo/models/__init__.py": "from .base import BaseModel\n",
            "demo/models/base.py": "import torch.nn as nn\n\nclass BaseModel(nn.Module):\n    pass\n",
            "demo/models/mid.py": "from .base import BaseModel\n\nclass Mid(BaseModel):\n    pass\n",
            "demo/models/mlp.py": "import torch.nn.functional as F\nfrom .mid import Mid\n\n\nclass MLP(Mid):\n"
            + DROPOUT_FORWARD,
            "demo/net.py": "import torch.nn.functional as F\nfrom demo.models import BaseModel\n\n\nclass Net(BaseModel):\n"
            + DROPOUT_FORWARD,
            "demo/deep/head.py": "import torch.nn.functional as F\nfrom ..models.mlp import MLP\n\n\nclass Head(MLP):\n"
            + DROPOUT_FORWARD,
            "demo/plain.py": "import torch.nn.functional as F\n\nclass Helper:\n    pass\n\n\nclass NotModule(Helper):\n"
            "    def run(self, x):\n        return F.dropout(x, 0.5)\n",
        },
    )
    return tmp_path


def test_module_two_files_and_two_hops_away(cli, project):
    assert codes(cli, "demo/models/mlp.py", cwd=project) == [("mlp.py", 7, "TL201")]


def test_reexport_through_init_and_relative_imports(cli, project):
    found = codes(cli, "demo", cwd=project)
    assert ("net.py", 7, "TL201") in found
    assert ("head.py", 7, "TL201") in found
    assert not [f for f in found if f[0] == "plain.py"]


def test_no_project_sees_one_file(cli, project):
    (project / "demo/runner.py").write_text(
        "import torch.nn.functional as F\nfrom demo.models.mid import Mid\n\n\nclass Runner(Mid):\n"
        "    def run(self, x):\n        return F.dropout(x, 0.5)\n",
        encoding="utf-8",
    )
    assert codes(cli, "demo/runner.py", cwd=project) == [("runner.py", 7, "TL201")]
    assert codes(cli, "--no-project", "demo/runner.py", cwd=project) == []
    (project / "pyproject.toml").write_text("[tool.torchlint]\nproject-index = false\n", encoding="utf-8")
    assert codes(cli, "demo/runner.py", cwd=project) == []


def test_unknown_base_needs_evidence(cli, tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": "",
            "app.py": """\
                import torch.nn.functional as F
                from somepkg import Base


                class WithForward(Base):
                    def forward(self, x):
                        return F.dropout(x, 0.5)


                class WithoutEvidence(Base):
                    def run(self, x):
                        return F.dropout(x, 0.5)
                """,
        },
    )
    assert codes(cli, "app.py", cwd=tmp_path) == [("app.py", 7, "TL201")]
    message = cli("check", "app.py", cwd=tmp_path).stdout.splitlines()[0]
    assert "WithForward is taken to be an nn.Module because it defines forward()" in message


def test_index_refreshed_when_a_file_changes(cli, project):
    base = project / "demo/models/base.py"
    assert codes(cli, "demo/models/mlp.py", cwd=project)
    base.write_text("class BaseModel:\n    pass\n", encoding="utf-8")
    assert codes(cli, "demo/models/mlp.py", cwd=project) == []
    base.write_text("import torch\n\nclass BaseModel(torch.nn.Module):\n    pass\n", encoding="utf-8")
    assert codes(cli, "demo/models/mlp.py", cwd=project) == [("mlp.py", 7, "TL201")]


def test_cache_is_marked_and_ignored(cli, project):
    codes(cli, "demo", cwd=project)
    cache = project / ".torchlint_cache"
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache / ".gitignore").read_text() == "*\n"


def test_flake8_on_one_file_matches_the_cli_on_the_project(cli, project):
    whole = [f for f in codes(cli, ".", cwd=project) if f[0] == "head.py"]
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "TL", "demo/deep/head.py"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    flake = [(Path(line.split(":")[0]).name, int(line.split(":")[1]), line.split()[1]) for line in result.stdout.splitlines()]
    assert flake == whole == [("head.py", 7, "TL201")]


def test_index_answers_with_evidence(project):
    idx = index.build(project, use_cache=False)
    status, evidence = idx.is_module("demo.models.mlp.MLP")
    assert status is True
    assert "Mid" in evidence or "mid.py" in evidence
    assert idx.is_module("demo.plain.NotModule") == (False, "")
    assert idx.is_module("demo.models.BaseModel")[0] is True  # through the re-export


def test_residual_blocks_defined_elsewhere(cli, tmp_path):
    write(
        tmp_path,
        {
            "setup.cfg": "",
            "net/__init__.py": "",
            "net/base.py": "import torch.nn as nn\n\nclass Block(nn.Module):\n    pass\n",
            "net/blocks.py": """\
                from .base import Block


                class ResBlock(Block):
                    def __init__(self, body):
                        super().__init__()
                        self.body = body

                    def forward(self, x):
                        return self.body(x)


                class GoodResBlock(Block):
                    def __init__(self, body):
                        super().__init__()
                        self.body = body

                    def forward(self, x):
                        return x + self.body(x)
                """,
            "net/model.py": """\
                import torch.nn as nn
                from .blocks import GoodResBlock, ResBlock


                class Net(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.stage = nn.Sequential(GoodResBlock(nn.Identity()), ResBlock(nn.Identity()))

                    def forward(self, x):
                        return self.stage(x)
                """,
        },
    )
    assert codes(cli, ".", cwd=tmp_path) == [("blocks.py", 4, "TL301")]
    assert codes(cli, "net/model.py", cwd=tmp_path) == []
    assert codes(cli, "--no-project", "net/blocks.py", cwd=tmp_path) == [("blocks.py", 4, "TL301")]


def test_residual_structure_across_files(cli, tmp_path):
    """What a base's forward does, a Sequential base, and a parent adding the skip around a
    block, all from other files: the project run, the one-file run and flake8 agree."""
    write(
        tmp_path,
        {
            "pyproject.toml": "",
            "net/__init__.py": "",
            "net/base.py": """\
                import torch.nn as nn


                class PlainBlock(nn.Module):
                    def __init__(self, c):
                        super().__init__()
                        self.conv = nn.Conv2d(c, c, 3, padding=1)

                    def forward(self, x):
                        return self.conv(x)


                class SkipBlock(PlainBlock):
                    def forward(self, x):
                        return x + self.conv(x)


                class Chain(nn.Sequential):
                    pass
                """,
            "net/blocks.py": """\
                import torch.nn as nn
                from .base import Chain, PlainBlock, SkipBlock


                class ResBlock(PlainBlock):
                    pass


                class GoodResBlock(SkipBlock):
                    pass


                class ChainResBlock(Chain):
                    def __init__(self, c):
                        super().__init__()
                        self.conv = nn.Conv2d(c, c, 3, padding=1)


                class ResidualLayer(nn.Module):
                    def __init__(self, c):
                        super().__init__()
                        self.fc = nn.Linear(c, c)

                    def forward(self, x):
                        residual = x
                        return self.fc(x)
                """,
            "net/model.py": """\
                import torch.nn as nn
                from .blocks import ResidualLayer


                class Tower(nn.Module):
                    def __init__(self, c):
                        super().__init__()
                        self.layers = nn.ModuleList([ResidualLayer(c) for _ in range(4)])

                    def forward(self, x):
                        for layer in self.layers:
                            x = x + layer(x)
                        return x
                """,
        },
    )
    expected = [("blocks.py", 5, "TL301"), ("blocks.py", 13, "TL301")]
    assert codes(cli, ".", cwd=tmp_path) == expected
    assert codes(cli, "net/blocks.py", cwd=tmp_path) == expected
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "TL", "net/blocks.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    flake = [(Path(line.split(":")[0]).name, int(line.split(":")[1]), line.split()[1]) for line in result.stdout.splitlines()]
    assert flake == expected
    idx = index.build(tmp_path, use_cache=False)
    assert idx.forward_kind("net.blocks.ResBlock") == "none"
    assert idx.forward_kind("net.blocks.GoodResBlock") == "skip"
    assert idx.forward_kind("net.blocks.ChainResBlock") == "sequential"
    assert "net.blocks.ResidualLayer" in idx.branch_classes


def test_names_a_project_wildcard_import_brings(cli, tmp_path):
    """``from .common import *`` brings what ``common.py`` imports (torch, nn, einops'
    rearrange): the tensor only passed through ``rearrange`` is judged as with explicit imports."""
    write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'zoo'\n",
            "zoo/__init__.py": "",
            "zoo/common.py": """\
                import torch
                import torch.nn as nn
                from einops import rearrange
            """,
            "zoo/film.py": """\
                from .common import *


                class FiLM(nn.Module):
                    def __init__(self, channels, cond_dim):
                        super().__init__()
                        self.to_scale = nn.Linear(cond_dim, channels)
                        self.base_gain = torch.ones(channels)

                    def forward(self, x, cond):
                        gain = rearrange(self.base_gain, "c -> 1 c 1 1")
                        return x * gain * rearrange(self.to_scale(cond), "b c -> b c 1 1")
            """,
        },
    )
    assert codes(cli, "zoo/film.py", cwd=tmp_path) == [("film.py", 8, "TL101")]
    assert codes(cli, "--no-project", "zoo/film.py", cwd=tmp_path) == []
