"""The rules: one module per rule, each defining one ``Rule`` subclass; found by discovery."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import libcst as cst

from torchlint.facts import ClassInfo, ModuleFacts
from torchlint.screen import TreeInfo

DOCS_URL = "https://github.com/torchlint/torchlint/blob/main/rules/{code}-{name}.md"


@dataclass(frozen=True)
class NodeEdit:
    """One change a fix makes, in terms of the tree: replace ``node``'s source with ``code``, or,
    with ``before=True``, insert ``code`` as a new statement line before the statement ``node``
    (indented as that statement is). ``code`` may be a function giving it, for code that costs a
    rendering: it is called only when the fix is shown or applied."""

    node: cst.CSTNode
    code: str | Callable[[], str]
    before: bool = False


@dataclass(frozen=True)
class Fix:
    """A fix for one finding. ``safe`` fixes keep the program's meaning apart from the bug;
    unsafe ones may change behaviour users rely on (checkpoint keys, numerics) and need
    ``--unsafe-fixes``. ``imports``: ``(module, name)`` pairs the fixed code needs, added with
    LibCST's AddImportsVisitor (``name`` None for ``import module``)."""

    message: str
    edits: tuple[NodeEdit, ...]
    safe: bool = True
    imports: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Hit:
    """What a rule reports: the node the finding is located at, and the message."""

    node: cst.CSTNode
    message: str
    cls: ClassInfo | None = None  # the module class the finding is about, when there is one
    fix: Fix | None = None

    def full_message(self) -> str:
        """The message, saying what made the class a module when its bases could not tell."""
        if self.cls is not None and self.cls.module_inferred:
            return (
                f"{self.message} ({self.cls.name} is taken to be an nn.Module because it "
                f"{self.cls.module_evidence}; its base class could not be resolved)"
            )
        return self.message


class Rule:
    """A check over the facts of one file.

    ``needles``: the rule can only fire on a file whose text contains one of these strings; the
    engine skips the rule (and the parse, when no rule is left) otherwise. ``screen``: the second
    tier, a necessary condition read from CPython's ast (torchlint/screen.py).
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    needles: ClassVar[tuple[str, ...]] = ("torch",)
    default_enabled: ClassVar[bool] = True
    # Why a rule is off by default, in one line (``torchlint rules`` shows it): its findings on
    # real code are rarely worth changing, as judged from the labels in benchmarks/labels/.
    off_reason: ClassVar[str] = ""
    # The oldest PyTorch the project supports (``target-version``), as (major, minor); None: the
    # latest. Set by the engine on each instance; rules whose advice depends on it read it.
    target_version: tuple[int, int] | None = None

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        raise NotImplementedError

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """False only when the rule cannot report anything on the file ``info`` describes."""
        return True

    @classmethod
    def url(cls) -> str:
        return DOCS_URL.format(code=cls.code, name=cls.name)


def _discover() -> dict[str, type[Rule]]:
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__:
                found[obj.code] = obj
    return dict(sorted(found.items()))


ALL_RULES: dict[str, type[Rule]] = _discover()

# Not a rule: reported by the engine for a file it cannot read or parse.
PARSE_ERROR_CODE = "TL000"
PARSE_ERROR_NAME = "parse-error"
PARSE_ERROR_SUMMARY = "a file that cannot be read, decoded or parsed"


def rule_doc(code: str) -> Path | None:
    """The Markdown page of a rule: in the installed package, or in the source tree's rules/."""
    here = Path(__file__).parent.parent
    for directory in (here / "rule_docs", here.parent / "rules"):
        pages = sorted(directory.glob(f"{code}-*.md"))
        if pages:
            return pages[0]
    return None
