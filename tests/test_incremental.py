"""The language server's re-parse of an edited document gives the tree and the positions a whole
parse gives, and parses again only around the edit."""

from __future__ import annotations

from pathlib import Path

import hypothesmith
import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libcst.metadata import MetadataWrapper, PositionProvider

from torchlint.incremental import DocumentTree
from torchlint.positions import Positions

ROOT = Path(__file__).resolve().parents[1]
REAL_FILES = sorted([*ROOT.glob("torchlint/**/*.py"), *ROOT.glob("tests/fixtures/*.py"), *ROOT.glob("examples/*.py")])
TEXTS = [t for t in (p.read_text(encoding="utf-8") for p in REAL_FILES) if len(t) < 6000]  # small: a test is quick

# What people type: characters, lines, block openers, comments at every indentation, quotes
# and brackets left open, line continuations, other line endings.
SNIPPETS = [
    "x", "\n", "    ", "  ", "\t", "else:\n    pass\n", "# c\n", "    # c\n", "'''", '"', "(", ")", "[", "]",
    "def f():\n    pass\n", "class A:\n  x = 1\n", "\n\n", "\\\n", "@d\n", ":", "\r\n", "\r", "if x: y\n", ";",
]


def whole_parse(text: str) -> cst.Module | None:
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError:
        return None


def assert_same_as_whole_parse(tree: DocumentTree, text: str) -> None:
    expected = whole_parse(text)
    try:
        got = tree.parse(text)
    except cst.ParserSyntaxError:
        assert expected is None, "the edited text parses as a whole"
        return
    assert expected is not None, "the edited text does not parse as a whole"
    assert got.deep_equals(expected)
    ours, theirs = tree.positions(), MetadataWrapper(expected, unsafe_skip_copy=True).resolve(PositionProvider)
    nodes = [n for n in Positions(got)._spans if type(n) is not cst.Module]
    reference = [n for n in Positions(expected)._spans if type(n) is not cst.Module]
    assert len(nodes) == len(reference)
    for node, same in zip(nodes, reference):
        assert ours[node] == theirs[same], type(node).__name__


@pytest.mark.parametrize("path", REAL_FILES[::8], ids=lambda p: p.name)
def test_positions_are_position_providers(path):
    module = cst.parse_module(path.read_text(encoding="utf-8"))
    theirs = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    ours = Positions(module)
    assert all(ours[node] == r for node, r in theirs.items())


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
def test_positions_on_generated_code(source):
    try:
        module = cst.parse_module(source)
    except Exception:
        return
    theirs = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    ours = Positions(module)
    assert all(ours[node] == r for node, r in theirs.items())


@st.composite
def edits(draw):
    """A real file and a few edits of it: insertions, deletions, a line's indentation changed."""
    text = draw(st.sampled_from(TEXTS))
    steps = [text]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "indent"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        else:
            start = text.rfind("\n", 0, at) + 1
            text = text[:start] + draw(st.sampled_from(["  ", "    ", "#"])) + text[start:]
        steps.append(text)
    return steps


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(edits())
def test_edits_give_the_whole_parse(steps):
    tree = DocumentTree()
    for text in steps:
        assert_same_as_whole_parse(tree, text)


SOURCE = '''\
import torch.nn as nn


class A(nn.Module):
    def forward(self, x):
        if x:
            return x
        return -x


# between


def helper(x):
    return x + 1


class B(nn.Module):
    pass
'''


@pytest.mark.parametrize(
    "old, new",
    [
        ("        return -x\n", "        return -x\n    # the end of A\n"),  # a block footer
        ("\n\ndef helper", "\n    def helper"),  # a function moves into the class above
        ("def helper(x):\n    return x + 1\n", "else:\n    pass\n"),  # joins nothing: an error
        ("# between\n", "    # between, indented\n"),
        ("class B(nn.Module):\n    pass\n", "class B(nn.Module):\n    pass"),  # no final newline
        ("import torch.nn as nn\n", "# header\nimport torch.nn as nn\n"),
        ("class B(nn.Module):\n    pass\n", ""),
        ("    return x + 1\n", '    return """x + 1\n'),  # a string left open swallows the rest
        ("    return x + 1\n", "  return x + 1\n"),  # another indent for the module
    ],
)
def test_tricky_edits(old, new):
    tree = DocumentTree()
    tree.parse(SOURCE)
    assert old in SOURCE
    assert_same_as_whole_parse(tree, SOURCE.replace(old, new, 1))


def test_an_edit_in_one_function_parses_only_its_neighbours():
    tree = DocumentTree()
    tree.parse(SOURCE)
    assert tree.reparsed == len(tree.chunks) == 4
    tree.parse(SOURCE.replace("return x + 1", "return x + 2"))
    assert tree.reparsed == 3  # the function, and one statement on each side
    assert tree.module.code == SOURCE.replace("return x + 1", "return x + 2")


def test_crlf_document():
    text = SOURCE.replace("\n", "\r\n")
    tree = DocumentTree()
    tree.parse(text)
    assert_same_as_whole_parse(tree, text.replace("return x + 1", "return x + 3"))
    assert tree.reparsed < len(tree.chunks)
