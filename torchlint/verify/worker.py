"""The verifier's child process: one per file, started by ``runner`` as an isolated interpreter.

It reads one JSON job from stdin, ``{"path", "import_mode", "device", "findings", "results_fd",
"cpu_seconds", "directory"}``, drops the network where the OS lets it, sets its rlimits, imports torch (one
thread), imports the user's file under a name that is not ``__main__`` and calls
``probes.verify_finding`` for each finding. It reports on the inherited pipe ``results_fd``, one
JSON object a line; stdout and stderr are the user's and go nowhere. The events, in order::

    {"event": "started", "device": "cpu", "network": "dropped"}
    {"event": "imported"}                       or {"event": "failed", "reason": "..."}
    {"event": "result", "index": 0, "verdict": "...", "evidence": "...", "seconds": 0.12}
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import sys
import time
import traceback
import types

from torchlint.verify import stubs

MODULE_NAME = "torchlint_verify_target"
EVIDENCE_CHARS = 400  # as runner.EVIDENCE_CHARS
LAZY_TRIES = 4  # dropped statements run on demand, per definition or finding
LOOSE_PACKAGE = "torchlint_verify_package"
VERDICTS = ("confirmed", "refuted", "inconclusive")
MEMORY_LIMIT = 4 << 30

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    _quiet_stdio()
    channel = os.fdopen(job["results_fd"], "w", buffering=1, encoding="utf-8")

    def send(**event) -> None:
        channel.write(json.dumps(event) + "\n")
        channel.flush()

    network = "dropped" if drop_network() else "kept"
    _set_limit("RLIMIT_CPU", int(job["cpu_seconds"]))
    try:
        import torch

        torch.set_num_threads(1)
        device = choose_device(torch, job["device"])
        from torchlint.verify import probes
    except DeviceMissing as e:
        send(event="failed", reason=str(e))
        return
    except Exception as e:
        send(event="failed", reason=f"the verifier could not start: {_describe(e)}")
        return
    if device in ("cpu", "meta"):
        _set_limit("RLIMIT_AS", memory_limit())
    send(event="started", device=device, network=network)

    path = job["path"]
    try:
        target = import_target(path, job["import_mode"], job.get("directory"))
    except BaseException as e:  # the user's code: sys.exit, KeyboardInterrupt, anything
        reason = import_failure(e, path, job["import_mode"])
        send(event="failed", reason=f"{reason}; {stubs.note()}" if stubs.note() else reason)
        return
    stubs.strict()
    send(event="imported")

    for index, finding in enumerate(job["findings"]):
        start = time.perf_counter()
        for _ in range(LAZY_TRIES):
            verdict, evidence = _verify_one(probes, target, finding, path, device)
            undefined = _undefined_name(evidence)
            if not target.define(undefined):
                break
        if undefined in target.unbound:
            evidence = f"{undefined} is undefined: {target.unbound[undefined]}; {evidence}"
        notes = "; ".join(note for note in (target.lazy_note(), stubs.note()) if note)
        if notes:
            evidence = f"{_clip(evidence, EVIDENCE_CHARS - len(notes) - 2)}; {notes}"
        seconds = round(time.perf_counter() - start, 3)
        send(event="result", index=index, verdict=verdict, evidence=str(evidence), seconds=seconds)


def _verify_one(probes, target: Target, finding: dict, path: str, device: str) -> tuple[str, str]:
    failed = target.failure_at(finding["line"])
    if failed:
        return "inconclusive", failed
    try:
        verdict, evidence = probes.verify_finding(target.namespace, finding, path, device)
    except SystemExit as e:
        return "inconclusive", f"the module called {_exit_call(e)}"
    except BaseException as e:
        return "inconclusive", f"the probe failed: {_describe(e)}"
    if verdict not in VERDICTS:
        return "inconclusive", f"the probe returned an unknown verdict {verdict!r}"
    return verdict, evidence


_UNDEFINED = re.compile(r"name '(\w+)' is not defined")


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters (at least 80), so the notes after it survive the report's clip."""
    text = " ".join(text.split())
    limit = max(limit, 80)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _undefined_name(text: str) -> str | None:
    match = _UNDEFINED.search(text)
    return match.group(1) if match else None


class Target:
    """The imported file: its namespace; the statements that failed, by line; the names those
    left unbound, with the reason; and the top-level statements the definitions-only import
    dropped, by the names they bind, which run on demand (``define``) when a name is missing."""

    def __init__(self, path: str, namespace: dict, import_mode: str):
        self.path, self.namespace, self.import_mode = path, namespace, import_mode
        self.failures: list[tuple[range, str]] = []
        self.unbound: dict[str, str] = {}
        self.dropped: dict[str, ast.stmt] = {}
        self.ran_dropped: list[int] = []

    def run(self, statement: ast.stmt) -> BaseException | None:
        """Execute one top-level statement; the error it raised, or None."""
        code = compile(ast.Module(body=[statement], type_ignores=[]), self.path, "exec", dont_inherit=True)
        try:
            exec(code, self.namespace)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:  # noqa: BLE001 - the user's statement
            return error
        return None

    def execute(self, statement: ast.stmt) -> None:
        """Run a definition; a NameError for a name a dropped statement binds runs that statement
        first. A failure is kept with the statement's lines and the names it binds."""
        for _ in range(LAZY_TRIES):
            error = self.run(statement)
            if error is None or not self.define(_undefined_name(str(error)) if isinstance(error, NameError) else None):
                break
        if error is None:
            return
        name = _undefined_name(str(error)) if isinstance(error, NameError) else None
        reason = self.unbound.get(name) or import_failure(error, self.path, self.import_mode)
        start = min([statement.lineno, *(d.lineno for d in getattr(statement, "decorator_list", []))])
        self.failures.append((range(start, (statement.end_lineno or statement.lineno) + 1), reason))
        for bound in _bound_names(statement):
            self.unbound.setdefault(bound, reason)

    def define(self, name: str | None) -> bool:
        """Run the dropped top-level statement that binds ``name``; True when it ran."""
        statement = self.dropped.pop(name, None) if name else None
        if statement is None:
            return False
        error = self.run(statement)
        if error is not None:
            missing = _undefined_name(str(error)) if isinstance(error, NameError) else None
            reason = self.unbound.get(missing) or f"line {statement.lineno}, which binds it, raised {_describe(error)}"
            self.unbound.setdefault(name, reason)
            return False
        self.ran_dropped.append(statement.lineno)
        return True

    def failure_at(self, line: int) -> str | None:
        return next((reason for lines, reason in self.failures if line in lines), None)

    def lazy_note(self) -> str:
        if not self.ran_dropped:
            return ""
        return "also ran top-level line(s) " + ", ".join(map(str, sorted(self.ran_dropped))) + " for names the module needs"


def _bound_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in statement.names]
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return [n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]


def import_target(path: str, import_mode: str, directory: str | None = None) -> Target:
    """Execute the file as module ``torchlint_verify_target`` (registered in ``sys.modules``, so
    dataclasses and pickling work). ``full`` runs all of it, and any failure is raised.
    ``definitions`` runs only its imports, functions, classes and constant assignments, one
    statement at a time: a statement that fails (a class whose base is not defined) is skipped and
    kept with the reason, so the file's other classes can still be verified; a top-level
    assignment it dropped runs when a definition (or later a probe) needs the name it binds. Either way ``__name__`` is not ``"__main__"``, so the
    ``if __name__ == "__main__":`` block does not run. ``directory`` goes first on ``sys.path``
    (default: the file's own; a notebook's cells run from a copy elsewhere).

    Relative imports resolve in the file's package (the directories above it that hold an
    ``__init__.py``, whose parent also goes on ``sys.path``), or, for a loose file, in its
    directory. Modules the file (or a local module it imports) needs but this interpreter lacks
    are stubbed (``stubs``)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    here = directory or os.path.dirname(path)
    root, package = package_of(here)
    stubs.install(path, [here] + ([root] if root else []), LOOSE_PACKAGE)
    sys.path.insert(0, here)
    if root:
        sys.path.insert(1, root)
    sys.argv = [path]
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = path
    module.__package__ = package or _loose_package(here)
    sys.modules[MODULE_NAME] = module
    target = Target(path, module.__dict__, import_mode)
    if import_mode != "definitions":
        exec(compile(tree, path, "exec", dont_inherit=True), module.__dict__)
        return target
    kept = definitions(tree.body)
    for statement in tree.body:
        if statement not in kept and isinstance(statement, (ast.Assign, ast.AnnAssign)):
            for name in _bound_names(statement):
                target.dropped.setdefault(name, statement)
    for statement in kept:
        target.execute(statement)
    return target


def package_of(directory: str) -> tuple[str | None, str | None]:
    """(the directory above the package, the package's dotted name) when ``directory`` holds an
    ``__init__.py``; (None, None) otherwise."""
    parts: list[str] = []
    current = os.path.abspath(directory)
    while os.path.isfile(os.path.join(current, "__init__.py")) and os.path.basename(current).isidentifier():
        parts.append(os.path.basename(current))
        current = os.path.dirname(current)
    if not parts:
        return None, None
    return current, ".".join(reversed(parts))


def _loose_package(directory: str) -> str:
    """A package for a file outside any: relative imports then look in its directory."""
    package = types.ModuleType(LOOSE_PACKAGE)
    package.__path__ = [directory]
    sys.modules[LOOSE_PACKAGE] = package
    return LOOSE_PACKAGE


def definitions(body: list[ast.stmt]) -> list[ast.stmt]:
    """The top-level statements that only define: imports, functions, classes, assignments of
    constant expressions (literals, containers of them, names defined before, attributes of those,
    arithmetic, a few value-building calls), and ``try``/``if`` blocks made only of those whose
    handlers catch ImportError or whose test is constant (``try: import apex except ImportError:
    apex = None``). Everything else, ``if __name__ == "__main__":`` included, is dropped."""
    bound: set[str] = set(BUILTIN_NAMES)
    return [node for node in body if _defines(node, bound)]


def _defines(node: ast.stmt, bound: set[str]) -> bool:
    """True when ``node`` only defines (see ``definitions``); the names it binds go into ``bound``."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound.add(node.name)
    elif isinstance(node, ast.Assign) and _is_constant(node.value, bound):
        names = [_target_names(t) for t in node.targets]
        if any(n is None for n in names):
            return False
        bound.update(n for group in names for n in group)
    elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name) and _is_constant(node.value, bound):
        bound.add(node.target.id)
    elif isinstance(node, ast.Try) and node.handlers and all(stubs.catches_import_error(h) for h in node.handlers):
        inner = [*node.body, *(n for h in node.handlers for n in h.body), *node.orelse, *node.finalbody]
        return all(_defines(n, bound) for n in inner)
    elif isinstance(node, ast.If) and _is_constant(node.test, bound) and not _is_main_guard(node.test):
        return all(_defines(n, bound) for n in [*node.body, *node.orelse])
    elif not isinstance(node, ast.Pass):
        return False
    return True


def _is_main_guard(test: ast.expr) -> bool:
    return "__main__" in ast.unparse(test)


BUILTIN_NAMES = {"__name__", "__file__", *dir(builtins)}
# Calls that only build a value (no I/O, no training): kept among a file's definitions.
SAFE_CALLS = {
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bool", "range", "len", "min", "max",
    "namedtuple", "collections.namedtuple", "TypeVar", "typing.TypeVar", "partial", "functools.partial",
    "torch.device", "torch.cuda.is_available", "torch.backends.mps.is_available", "torch.cuda.device_count",
    "os.environ.get", "os.getenv", "os.path.join", "os.path.dirname", "os.path.abspath",
    "logging.getLogger", "getLogger", "math.sqrt", "math.log", "math.ceil", "math.floor",
}


def _is_constant(node: ast.expr, bound: set[str]) -> bool:
    if isinstance(node, (ast.Constant, ast.Lambda)):
        return True
    if isinstance(node, ast.Call):
        return (_dotted(node.func) in SAFE_CALLS and _is_constant(node.func, bound)
                and all(_is_constant(a.value if isinstance(a, ast.Starred) else a, bound) for a in node.args)
                and all(_is_constant(k.value, bound) for k in node.keywords))
    if isinstance(node, ast.IfExp):
        return all(_is_constant(n, bound) for n in (node.test, node.body, node.orelse))
    if isinstance(node, ast.Compare):
        return all(_is_constant(n, bound) for n in (node.left, *node.comparators))
    if isinstance(node, ast.BoolOp):
        return all(_is_constant(n, bound) for n in node.values)
    if isinstance(node, ast.Subscript):
        return _is_constant(node.value, bound) and _is_constant(node.slice, bound)
    if isinstance(node, ast.Name):
        return node.id in bound
    if isinstance(node, ast.Attribute):
        return _is_constant(node.value, bound)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e, bound) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_constant(k, bound) for k in node.keys) and all(_is_constant(v, bound) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _is_constant(node.left, bound) and _is_constant(node.right, bound)
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand, bound)
    return False


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _target_names(target: ast.expr) -> list[str] | None:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names = [_target_names(e) for e in target.elts]
        return None if any(n is None for n in names) else [n for group in names for n in group]
    return None


def import_failure(error: BaseException, path: str, import_mode: str) -> str:
    """Why the file could not be imported, as one line."""
    if isinstance(error, SystemExit):
        return f"the file called {_exit_call(error)} at import"
    if isinstance(error, stubs.StubUsed):
        return f"import failed: {stubs.describe(error)}"
    line = next((fs.lineno for fs in reversed(traceback.extract_tb(error.__traceback__)) if fs.filename == path), None)
    if isinstance(error, SyntaxError):
        line = error.lineno
    where = f" (line {line})" if line else ""
    hint = ""
    if import_mode == "definitions" and isinstance(error, NameError):
        hint = "; only the file's definitions ran, --verify-import full runs its top-level code"
    return f"import failed: {_describe(error)}{where}{hint}"


class DeviceMissing(Exception):
    pass


def choose_device(torch, requested: str) -> str:
    """``auto``: cuda, then mps, then cpu. A requested device that is not there is an error."""
    mps = getattr(torch.backends, "mps", None)
    has = {"cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available(), "cpu": True, "meta": True}
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if has[d])
    if not has.get(requested, False):
        raise DeviceMissing(f"--verify-device {requested}: this machine's torch has no {requested} device")
    return requested


def drop_network() -> bool:
    """Enter a new user and network namespace (Linux; no privilege needed where user namespaces
    are enabled): the process then sees only a loopback device that is down. False when the OS
    does not allow it; the run goes on with the network."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        uid, gid = os.getuid(), os.getgid()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
    except Exception:
        return False
    for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:
            pass
    return True


def memory_limit() -> int:
    """4 GiB, or half the machine's memory when that is less."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return MEMORY_LIMIT
    return min(MEMORY_LIMIT, max(total // 2, 1 << 30))


def _set_limit(name: str, value: int) -> None:
    try:
        import resource

        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))
    except (ImportError, AttributeError, ValueError, OSError):
        pass


def _quiet_stdio() -> None:
    """stdin, stdout and stderr on /dev/null: the user's code reads nothing and prints nowhere."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _exit_call(error: SystemExit) -> str:
    return "sys.exit()" if error.code is None else f"sys.exit({error.code!r})"


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


if __name__ == "__main__":
    main()
