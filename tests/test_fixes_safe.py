"""The fixes of TL201, TL202, TL403, TL104 and TL505: each before/after pair is exact, parses,
and is clean of its code afterwards (a second --fix changes nothing)."""

from __future__ import annotations

import ast

import pytest

from torchlint import fixes
from torchlint.engine import check_source


def fixed(before: str, code: str, unsafe: bool = False) -> str:
    findings = [f for f in check_source(before) if f.code == code]
    chosen, _ = fixes.choose(findings, unsafe)
    text = fixes.apply_edits(before, [e for f in chosen for e in f.fix.edits])
    return fixes.with_imports(text, [i for f in chosen for i in f.fix.imports])


def assert_fix(before: str, after: str, code: str, unsafe: bool = False) -> None:
    result = fixed(before, code, unsafe)
    assert result == after
    ast.parse(result)
    assert not [f for f in check_source(result) if f.code == code]


DROPOUT = """\
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def forward(self, x):
        x = F.dropout(x, p=0.5)
        y = F.dropout(
            x,
            0.2,
        )
        z = F.dropout(x,
                      0.3)
        return F.dropout(x) + y + z
"""

DROPOUT_FIXED = """\
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def forward(self, x):
        x = F.dropout(x, p=0.5, training=self.training)
        y = F.dropout(
            x,
            0.2,
            training=self.training,
        )
        z = F.dropout(x,
                      0.3, training=self.training)
        return F.dropout(x, training=self.training) + y + z
"""


def test_tl201_appends_training():
    assert_fix(DROPOUT, DROPOUT_FIXED, "TL201")


def test_tl201_appends_training_in_a_crlf_file():
    before, after = DROPOUT.replace("\n", "\r\n"), DROPOUT_FIXED.replace("\n", "\r\n")
    assert_fix(before, after, "TL201")


MC_DROPOUT = """\
import torch.nn as nn
import torch.nn.functional as F


class MC(nn.Module):
    def forward(me, x):
        return F.dropout(x, 0.1, True) + F.dropout(x, training=True)
"""


def test_tl204_training_true_is_unsafe():
    """A literal training=True is TL204's, not TL201's, and its fix is unsafe."""
    findings = [f for f in check_source(MC_DROPOUT) if f.code in ("TL201", "TL204")]
    assert [(f.code, f.fix.applicability) for f in findings] == [("TL204", "unsafe"), ("TL204", "unsafe")]
    assert fixed(MC_DROPOUT, "TL204") == MC_DROPOUT
    assert_fix(MC_DROPOUT, MC_DROPOUT.replace("True", "me.training"), "TL204", unsafe=True)


ATTENTION = """\
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def forward(self, q, k, v, mask):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p)
        b = F.scaled_dot_product_attention(q, k, v, mask, 0.1)
        c = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.flag else 0.2)
        return a + b + c
"""

ATTENTION_FIXED = """\
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def forward(self, q, k, v, mask):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
        b = F.scaled_dot_product_attention(q, k, v, mask, 0.1 if self.training else 0.0)
        c = F.scaled_dot_product_attention(q, k, v, dropout_p=(self.p if self.flag else 0.2) if self.training else 0.0)
        return a + b + c
"""


def test_tl202_gates_the_rate():
    assert_fix(ATTENTION, ATTENTION_FIXED, "TL202")


LOSSES = """\
import torch.nn as nn


def train_epoch(model, loader, optimizer):
    criterion = nn.CrossEntropyLoss()
    total_loss = 0.0
    total = 0
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
        total = total + loss * 2
        losses.append(loss)
    avg = total_loss / len(loader)
    print(f"{avg:.3f} {float(total_loss)}")
    return total, losses
"""

LOSSES_FIXED = """\
import torch.nn as nn


def train_epoch(model, loader, optimizer):
    criterion = nn.CrossEntropyLoss()
    total_loss = 0.0
    total = 0
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        total = total + (loss * 2).detach()
        losses.append(loss.detach())
    avg = total_loss / len(loader)
    print(f"{avg:.3f} {float(total_loss)}")
    return total, losses
"""


def test_tl403_item_for_numbers_detach_for_tensors():
    assert_fix(LOSSES, LOSSES_FIXED, "TL403")


@pytest.mark.parametrize(
    "read",
    ["print(total_loss)", "return total_loss", "print(total_loss.item())", "log(total_loss.cpu())"],
)
def test_tl403_detach_when_the_total_is_used_as_a_tensor(read):
    before = LOSSES.replace('    print(f"{avg:.3f} {float(total_loss)}")\n', f"    {read}\n")
    after = fixed(before, "TL403")
    assert "total_loss += loss.detach()" in after
    assert not [f for f in check_source(after) if f.code == "TL403"]


SUPER = '''\
import torch.nn as nn
import pytorch_lightning as pl


class Head(nn.Module):
    def __init__(self, dim, classes):
        """A head."""
        self.classes = classes
        self.fc = nn.Linear(dim, classes)


class Model(pl.LightningModule):
    def __init__(self):
        self.fc = nn.Linear(1, 2)
'''

SUPER_FIXED = '''\
import torch.nn as nn
import pytorch_lightning as pl


class Head(nn.Module):
    def __init__(self, dim, classes):
        """A head."""
        super().__init__()
        self.classes = classes
        self.fc = nn.Linear(dim, classes)


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 2)
'''


def test_tl104_inserts_super_init():
    assert_fix(SUPER, SUPER_FIXED, "TL104")


@pytest.mark.parametrize(
    "source",
    [
        # a base whose __init__ needs arguments
        "import torch.nn as nn\nclass L(nn.Linear):\n    def __init__(self):\n        self.k = 1\n",
        # super().__init__() stops at a plain mixin: a second base initialiser is the author's call
        "import torch.nn as nn\nclass R:\n    def __init__(self):\n        self.r = 1\n"
        + "class M(R, nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.k = 1\n",
        # the body on the def line
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self): self.fc = nn.Linear(1, 2)\n",
    ],
)
def test_tl104_no_fix(source):
    [finding] = [f for f in check_source(source) if f.code == "TL104"]
    assert finding.fix is None


AMP = """\
import torch


def train(model, loader, optimizer):
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
"""

AMP_FIXED = """\
import torch


def train(model, loader, optimizer):
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
"""


def test_tl505_unscales_the_stepped_optimizer():
    assert_fix(AMP, AMP_FIXED, "TL505")


@pytest.mark.parametrize(
    "change",
    [
        # gradient accumulation: clipped every batch, stepped every k
        ("        scaler.step(optimizer)\n", "        if i % k == 0:\n            scaler.step(optimizer)\n"),
        # two optimizers
        ("        scaler.step(optimizer)\n", "        scaler.step(optimizer)\n        scaler.step(other)\n"),
        # no step: the optimizer is unknown
        ("        scaler.step(optimizer)\n", ""),
    ],
)
def test_tl505_no_fix(change):
    source = AMP.replace(*change)
    [finding] = [f for f in check_source(source) if f.code == "TL505"]
    assert finding.fix is None
