"""The verifier's runner and worker: isolation, timeouts, failures at import, output formats."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchlint.engine import Finding
from torchlint.report import json_format, text
from torchlint.verify import worker
from torchlint.verify.runner import Verification, verify_file

MODEL = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), p=0.5)
'''
DROPOUT_LINE = 12


def dropout_finding(path: Path, line: int = DROPOUT_LINE) -> Finding:
    return Finding(str(path), line, 16, "TL201", "F.dropout() without training=")


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


# ---- without torch: the definitions filter and the formats


def test_definitions_keep_imports_defs_and_constants_only():
    source = '''\
import torch
from torch import nn as tnn
WIDTH = 64
SIZES = (WIDTH, 2 * WIDTH, -1)
DTYPE = torch.float32
CONFIG: dict = {"width": WIDTH, "depth": 3}
model = build()
data = torch.randn(3)
print("hello")
def f(): pass
class C: pass
if __name__ == "__main__":
    f()
'''
    kept = worker.definitions(ast.parse(source).body)
    assert [ast.unparse(n).split("\n")[0] for n in kept] == [
        "import torch",
        "from torch import nn as tnn",
        "WIDTH = 64",
        "SIZES = (WIDTH, 2 * WIDTH, -1)",
        "DTYPE = torch.float32",
        "CONFIG: dict = {'width': WIDTH, 'depth': 3}",
        "def f():",
        "class C:",
    ]


def test_json_verification_is_null_without_verify_and_filled_with_it():
    f = Finding("m.py", 3, 5, "TL201", "msg")
    assert json.loads(json_format.render([f]))[0]["verification"] is None
    v = Verification("confirmed", "F.dropout ran with training=True", "cpu", 0.25)
    out = json.loads(json_format.render([f], verifications={f: v}))
    assert out[0]["verification"] == {"verdict": "confirmed", "evidence": "F.dropout ran with training=True", "device": "cpu", "seconds": 0.25}


def test_text_shows_the_verdict_under_each_finding():
    a, b = Finding("m.py", 3, 5, "TL201", "msg a"), Finding("m.py", 9, 1, "TL101", "msg b")
    verifications = {a: Verification("confirmed", "it ran", "cpu", 0.1), b: Verification("inconclusive", "no probe for this rule", "cpu", 0.0)}
    lines = text.render([a, b], verifications=verifications).splitlines()
    assert lines[:4] == ["m.py:3:5: TL201 msg a", "  confirmed: it ran", "m.py:9:1: TL101 msg b", "  inconclusive: no probe for this rule"]
    assert lines[-1] == "Verified 2 findings on cpu: 1 confirmed, 0 refuted, 1 inconclusive."
    assert "confirmed" not in text.render([a, b])


def test_verify_without_torch_is_a_usage_error(tmp_path):
    path = write(tmp_path, "m.py", MODEL)
    no_torch = "import sys; sys.modules['torch'] = None; from torchlint.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", no_torch, "check", "--verify", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "torchlint: error: --verify needs torch: pip install 'torchlint[verify]'\n"
    assert result.stdout == ""


# ---- with torch: the worker process


@pytest.fixture
def torch_installed():
    return pytest.importorskip("torch")


def test_definitions_only_import_skips_top_level_code(tmp_path, torch_installed):
    path = write(tmp_path, "hang.py", MODEL + "\nwhile True:\n    pass\n")
    [v] = verify_file(str(path), [dropout_finding(path)], device="cpu", timeout=10, import_mode="definitions")
    assert "timed out" not in v.evidence
    assert v.device == "cpu"


def test_a_hanging_probe_costs_its_timeout_and_a_new_worker_takes_the_rest(tmp_path, torch_installed):
    source = MODEL.replace("    def forward(self, x):\n", "    def forward(self, x):\n        while x.sum() == x.sum():\n            pass\n")
    source += "\n\nclass Other(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, p=0.5)\n"
    path = write(tmp_path, "slow.py", source)
    hanging, fine = dropout_finding(path, DROPOUT_LINE + 2), Finding(str(path), source.count("\n"), 16, "TL201", "m")
    first, second = verify_file(str(path), [hanging, fine], device="cpu", timeout=2, import_mode="definitions")
    assert (first.verdict, first.evidence) == ("inconclusive", "timed out after 2 s while probing")
    assert "timed out" not in second.evidence


def test_sandbox_environment(tmp_path, torch_installed):
    """A fresh temporary HOME and working directory, one torch thread, a module name that is not
    __main__, and no network when this OS lets an unprivileged process drop it."""
    probe = (
        "import os, socket\n"
        "raise RuntimeError(repr((os.environ['HOME'], os.getcwd(), torch.get_num_threads(), __name__,"
        " sorted(n for _, n in socket.if_nameindex()))))\n"
    )
    path = write(tmp_path, "env.py", MODEL + probe)
    [v] = verify_file(str(path), [dropout_finding(path)], device="cpu", timeout=10, import_mode="full")
    home, cwd, threads, name, interfaces = ast.literal_eval(v.evidence.split("RuntimeError: ", 1)[1].rsplit(" (line", 1)[0])
    assert home == cwd and Path(home).name.startswith("torchlint-verify-") and home != str(Path.home())
    assert (threads, name) == (1, "torchlint_verify_target")
    can_drop = subprocess.run([sys.executable, "-c", "from torchlint.verify import worker; print(worker.drop_network())"], capture_output=True, text=True)
    if can_drop.stdout.strip() == "True":
        assert interfaces == ["lo"]


def test_directory_run_finishes_within_the_timeouts(tmp_path, cli, torch_installed):
    """A file that hangs, one that calls sys.exit (after printing: stdout stays ours), one that
    ends the process, one with a __main__ block (not run), one that fails to import and one whose
    module cannot be built: each is inconclusive with its reason, the run goes on."""
    marker = tmp_path / "ran.txt"
    write(tmp_path, "hang.py", MODEL + "\nwhile True:\n    pass\n")
    write(tmp_path, "exits.py", MODEL + "\nimport sys\nprint('noise')\nsys.exit(3)\n")
    write(tmp_path, "main.py", MODEL + f'\nif __name__ == "__main__":\n    open({str(marker)!r}, "w").write("ran")\n')
    write(tmp_path, "osexit.py", MODEL + "\nimport os\nos._exit(7)\n")
    write(tmp_path, "broken.py", "import torchlint_no_such_package\nif torchlint_no_such_package.ENABLED:\n    pass\n" + MODEL)
    write(tmp_path, "unbuildable.py", MODEL.replace("super().__init__()", "super().__init__()\n        raise RuntimeError('needs a checkpoint')"))
    start = time.monotonic()
    result = cli("check", "--verify", "--verify-timeout", "5", "--verify-import", "full", "--output-format", "json", "--isolated", str(tmp_path))
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    by_file = {Path(f["filename"]).name: f["verification"] for f in json.loads(result.stdout)}
    assert set(by_file) == {"hang.py", "exits.py", "osexit.py", "main.py", "broken.py", "unbuildable.py"}
    assert by_file["hang.py"]["evidence"] == "timed out after 5 s at import"
    assert by_file["exits.py"]["evidence"] == "the file called sys.exit(3) at import"
    assert by_file["osexit.py"]["evidence"] == "the file exited the process with status 7 at import"
    assert by_file["broken.py"]["evidence"] == (
        "import failed: needs torchlint_no_such_package, which is not installed "
        "(torchlint_no_such_package.ENABLED was used at line 2); stubbed: torchlint_no_such_package")
    assert "needs a checkpoint" in by_file["unbuildable.py"]["evidence"]
    assert "import failed" not in by_file["main.py"]["evidence"]
    for name in ("hang.py", "exits.py", "osexit.py", "broken.py", "unbuildable.py"):
        assert by_file[name]["verdict"] == "inconclusive", name
    assert all(v["verdict"] in ("confirmed", "refuted", "inconclusive") and v["device"] == "cpu" for v in by_file.values())
    assert not marker.exists()
    assert elapsed < 60


def test_text_output_of_verify(tmp_path, cli, torch_installed):
    path = write(tmp_path, "m.py", MODEL)
    result = cli("check", "--output-format", "concise", "--verify", "--verify-device", "cpu", "--isolated", str(path))
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}:{DROPOUT_LINE}:")
    assert lines[1].startswith(("  confirmed: ", "  refuted: ", "  inconclusive: "))
    assert lines[-1].startswith("Verified 1 finding on cpu: ")


def test_a_statement_that_fails_costs_only_its_own_findings(tmp_path, torch_installed):
    """Definitions run one statement at a time: a class whose base is not defined is skipped with
    the reason, the file's other classes are verified."""
    source = MODEL + "\n\nclass Broken(UndefinedBase):\n    def forward(self, x):\n        return F.dropout(x, p=0.5)\n"
    path = write(tmp_path, "partial.py", source)
    broken_line = source.count("\n") - 1
    fine, broken = verify_file(str(path), [dropout_finding(path), dropout_finding(path, broken_line)],
                               device="cpu", timeout=10, import_mode="definitions")
    assert fine.verdict == "confirmed", fine.evidence
    assert broken.verdict == "inconclusive"
    assert broken.evidence.startswith("import failed: NameError: name 'UndefinedBase' is not defined")


def test_missing_modules_are_stubbed_and_named(tmp_path, torch_installed):
    """A helper module and an optional package that are not there: the class that does not use
    them is verified and the evidence names them; the one that calls them is inconclusive."""
    source = (
        "from utils_not_here import load_data\nimport einops_not_here as E\nfrom .layers_not_here import Block\n"
        + MODEL
        + "\n\nclass UsesIt(nn.Module):\n    def forward(self, x):\n        return F.dropout(E.rearrange(x, 'b c -> c b'), p=0.5)\n"
    )
    path = write(tmp_path, "helpers.py", source)
    uses_line = source.count("\n")
    plain, uses = verify_file(str(path), [dropout_finding(path, DROPOUT_LINE + 3), dropout_finding(path, uses_line)],
                              device="cpu", timeout=10, import_mode="definitions")
    assert plain.verdict == "confirmed", plain.evidence
    assert plain.evidence.endswith("stubbed: utils_not_here, einops_not_here, .layers_not_here")
    assert uses.verdict == "inconclusive"
    assert uses.evidence.startswith(f"needs einops_not_here, which is not installed (einops_not_here.rearrange was called at line {uses_line})")


def test_a_guarded_import_takes_its_fallback(tmp_path, torch_installed):
    """``try: import x except ImportError: fallback`` runs among the definitions, and x is not
    stubbed: the code takes the fallback as it would without x."""
    source = (
        "import torch.nn as nn\n"
        "try:\n    from fused_not_here import FusedLayerNorm as LayerNorm\nexcept ImportError:\n    LayerNorm = nn.LayerNorm\n"
        + MODEL.replace("self.fc = nn.Linear(8, 4)", "self.fc = nn.Sequential(LayerNorm(8), nn.Linear(8, 4))")
    )
    path = write(tmp_path, "guarded.py", source)
    [v] = verify_file(str(path), [dropout_finding(path, DROPOUT_LINE + 5)], device="cpu", timeout=10, import_mode="definitions")
    assert v.verdict == "confirmed", v.evidence
    assert "stubbed" not in v.evidence


def test_a_dropped_top_level_assignment_runs_when_a_name_is_missing(tmp_path, torch_installed):
    """``REGISTRY = Registry()`` (a decorator's registry) and ``P = rate()`` are not definitions,
    but the class needs them: they run on demand, and the evidence says so."""
    source = (
        "class Registry:\n    def register(self):\n        return lambda cls: cls\n\n\n"
        "def rate():\n    return 0.5\n\n\n"
        "REGISTRY = Registry()\nP = rate()\n"
        + MODEL.replace("class Head", "@REGISTRY.register()\nclass Head").replace("p=0.5", "p=P")
    )
    path = write(tmp_path, "registry.py", source)
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "F.dropout" in text)
    [v] = verify_file(str(path), [dropout_finding(path, line)], device="cpu", timeout=10, import_mode="definitions")
    assert v.verdict == "confirmed", v.evidence
    assert v.evidence.endswith("also ran top-level line(s) 10, 11 for names the module needs")
