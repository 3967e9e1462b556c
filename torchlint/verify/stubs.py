"""Stand-ins for the modules a verified file imports but this interpreter lacks.

``install(roots)`` adds an import finder, after the real ones, that answers an import of a missing
module made by the user's code (a file under one of ``roots``) with a stub module, unless that
import sits in a ``try`` that handles ImportError (the code then has a fallback, and takes it).
A stub module hands out stub objects. While the file is imported they let it define its classes:
they can be called (a call on a single class or function is taken as a decorator and returns it),
subscripted and combined with ``|`` for annotations. Once ``strict()`` is called, before the
probes, any use of a stub object but naming it raises ``StubUsed``, a BaseException that user code
catching Exception does not swallow: the verdict is then inconclusive, naming the missing module.

A base class from a missing package makes its subclasses uninstantiable (``StubUsed``), except
Lightning's ``LightningModule``, which is an ``nn.Module`` with extra methods: it stands in as one.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import types

MODULE_STANDINS = {"LightningModule"}
PLAIN_DUNDERS = {"__version__"}  # module attributes that are plain values, stubbed like any name
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


class StubUsed(BaseException):
    """A stub of a missing module was used where its real behaviour matters."""

    def __init__(self, name: str, how: str):
        name = shown(name)
        super().__init__(f"{name} {how}")
        self.name = name
        self.module = "." + name[1:].split(".")[0] if name.startswith(".") else name.split(".")[0]
        self.where = _user_line()


class _State:
    target = ""
    strict = False
    loose = "\0"
    roots: tuple[str, ...] = ()
    missing: list[str] = []  # top-level names of the stubbed modules, in order of first import
    decorators: list[str] = []  # stub calls taken as decorators while the file was imported
    guarded_lines: dict[str, set[int]] = {}


def install(target: str, roots: list[str], loose_package: str = "") -> None:
    """Stub missing modules imported by files under ``roots`` (directories), for the verified
    file ``target``. Modules under ``loose_package`` (the stand-in package of a file outside any)
    are named relatively."""
    _State.target = os.path.realpath(target)
    _State.roots = tuple(os.path.realpath(r) + os.sep for r in roots)
    _State.loose = loose_package + "." if loose_package else "\0"
    _State.missing, _State.decorators, _State.strict = [], [], False
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.append(_StubFinder())


def strict() -> None:
    """From now on, using a stub raises StubUsed."""
    _State.strict = True


def stubbed() -> list[str]:
    """The top-level names of the modules that were stubbed."""
    return list(_State.missing)


def note() -> str:
    """``stubbed: utils, einops`` (and the decorators taken as such), or "" when nothing was."""
    if not _State.missing:
        return ""
    text = "stubbed: " + ", ".join(_State.missing)
    if _State.decorators:
        text += " (taken as plain decorators: " + ", ".join(dict.fromkeys(_State.decorators)) + ")"
    return text


def shown(name: str) -> str:
    """A module name as the file wrote it: ``.layers`` for a relative import of a loose file."""
    return "." + name[len(_State.loose):] if name.startswith(_State.loose) else name


def describe(error: StubUsed) -> str:
    where = ""
    if error.where:
        filename, line = error.where
        shown_file = "" if filename == _State.target else os.path.relpath(filename, os.path.dirname(_State.target)) + ":"
        where = f" at {'line ' if not shown_file else ''}{shown_file}{line}"
    return f"needs {error.module}, which is not installed ({error}{where})"


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        parent = fullname.rpartition(".")[0]
        if parent and isinstance(sys.modules.get(parent), StubModule):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        filename, line = _importer()
        if filename is None or _guarded(filename, line):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return StubModule(spec.name)

    def exec_module(self, module):
        name = shown(module.__name__)
        top = "." + name[1:].split(".")[0] if name.startswith(".") else name.split(".")[0]
        if top not in _State.missing:
            _State.missing.append(top)


class StubModule(types.ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self.__path__ = []

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__") and attr not in PLAIN_DUNDERS:
            raise AttributeError(attr)
        value = Stub(f"{self.__name__}.{attr}")
        setattr(self, attr, value)
        return value


class Stub:
    """A name from a missing module."""

    def __init__(self, name: str):
        object.__setattr__(self, "_stub_name", name)

    def __repr__(self) -> str:
        return f"{shown(self._stub_name)} (not installed)"

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Stub(f"{self._stub_name}.{attr}")

    def __mro_entries__(self, bases):
        short = self._stub_name.rsplit(".", 1)[-1]
        if short in MODULE_STANDINS:
            return (_lightning_module(),)
        return (_stub_base(self._stub_name),)

    def __call__(self, *args, **kwargs):
        if _State.strict:
            raise StubUsed(self._stub_name, "was called")
        if len(args) == 1 and not kwargs and (inspect.isclass(args[0]) or inspect.isfunction(args[0])):
            _State.decorators.append(self._stub_name)
            return args[0]
        return Stub(f"{self._stub_name}()")

    def __getitem__(self, key):
        if _State.strict:
            raise StubUsed(self._stub_name, "was indexed")
        return Stub(f"{self._stub_name}[]")

    def __or__(self, other):
        if _State.strict:
            raise StubUsed(self._stub_name, "was used in an expression")
        return Stub(self._stub_name)

    __ror__ = __or__

    def __instancecheck__(self, instance):
        raise StubUsed(self._stub_name, "was used in isinstance()")


def _refuse(how: str):
    def refuse(self, *args, **kwargs):
        raise StubUsed(object.__getattribute__(self, "_stub_name"), how)

    return refuse


for _name in ("__bool__", "__iter__", "__len__", "__contains__", "__int__", "__float__", "__index__",
              "__enter__", "__exit__", "__lt__", "__le__", "__gt__", "__ge__",
              "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
              "__rtruediv__", "__matmul__", "__rmatmul__", "__neg__", "__pow__", "__setattr__",
              "__setitem__", "__fspath__"):
    setattr(Stub, _name, _refuse("was used"))
Stub.__torch_function__ = classmethod(lambda cls, func, types, args=(), kwargs=None: _raise_for_args(args, kwargs))


def _raise_for_args(args, kwargs):
    for value in (*args, *(kwargs or {}).values()):
        if isinstance(value, Stub):
            raise StubUsed(object.__getattribute__(value, "_stub_name"), "reached torch")
    return NotImplemented


class _StubBaseMeta(type):
    def __call__(cls, *args, **kwargs):
        raise StubUsed(cls._stub_base_name, f"is the base class of {cls.__name__}")


_bases: dict[str, type] = {}


def _stub_base(name: str) -> type:
    if name not in _bases:
        _bases[name] = _StubBaseMeta(name.rsplit(".", 1)[-1], (), {"_stub_base_name": name})
    return _bases[name]


def stub_base_of(cls: type) -> str | None:
    """The stubbed base class name of ``cls``, if one of its bases is a stub."""
    for klass in getattr(cls, "__mro__", ()):
        if isinstance(klass, _StubBaseMeta):
            return klass._stub_base_name
    return None


_lightning: list[type] = []


def _lightning_module() -> type:
    """An nn.Module with the LightningModule methods a model's own code calls."""
    if _lightning:
        return _lightning[0]
    from torch import nn

    class AttributeDict(dict):
        def __getattr__(self, key):
            try:
                return self[key]
            except KeyError:
                raise AttributeError(key) from None

    class LightningModule(nn.Module):
        hparams = AttributeDict()

        def save_hyperparameters(self, *names, **_ignored):
            """As Lightning does: the caller's arguments (or the named ones, or one dict or
            Namespace given) become ``self.hparams``."""
            frame = sys._getframe(1)
            args = {k: v for k, v in frame.f_locals.items() if k not in ("self", "__class__")}
            if names and all(isinstance(n, str) for n in names):
                args = {k: args[k] for k in names if k in args}
            elif names:
                args = dict(names[0]) if isinstance(names[0], dict) else dict(vars(names[0]))
            object.__setattr__(self, "hparams", AttributeDict(args))

        def log(self, *args, **kwargs):
            return None

        log_dict = log

        @property
        def device(self):
            return next(self.parameters()).device

    _lightning.append(LightningModule)
    return LightningModule


def _importer() -> tuple[str | None, int]:
    """The user file and line of the import being resolved, or (None, 0) when torch, the standard
    library or another installed package is importing."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<frozen") and not _is_importlib(filename):
            real = os.path.realpath(filename)
            if any(real.startswith(root) for root in _State.roots) and "site-packages" not in real:
                return real, frame.f_lineno
            return None, 0
        frame = frame.f_back
    return None, 0


def _is_importlib(filename: str) -> bool:
    return os.sep + "importlib" + os.sep in filename


def _guarded(filename: str, line: int) -> bool:
    """True when ``line`` of ``filename`` is inside a try whose handlers catch ImportError."""
    if filename not in _State.guarded_lines:
        lines: set[int] = set()
        try:
            with open(filename, encoding="utf-8") as file:
                tree = ast.parse(file.read())
        except (OSError, SyntaxError, ValueError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(catches_import_error(h) for h in node.handlers):
                for stmt in node.body:
                    lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        _State.guarded_lines[filename] = lines
    return line in _State.guarded_lines[filename]


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    """True when the handler catches ImportError (or a base of it, or everything)."""
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", None)) in _IMPORT_ERRORS for n in names)


def _user_line() -> tuple[str, int] | None:
    """The file and line of the innermost frame of the user's code (a file under the roots)."""
    frame = sys._getframe(2)
    while frame is not None:
        real = os.path.realpath(frame.f_code.co_filename)
        if any(real.startswith(r) for r in _State.roots):
            return real, frame.f_lineno
        frame = frame.f_back
    return None
