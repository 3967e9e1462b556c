"""The parent side of ``--verify``: one sandboxed worker process per file (``worker.py``), a
timeout for the file's import and for each finding, and a ``Verification`` for every finding.

A worker that times out, crashes or exits costs its timeout and makes the findings it had not
answered inconclusive, with the reason; when that happens while probing one finding, a new worker
takes the findings after it. Files run in parallel, a few workers at a time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from torchlint.finding import Finding
from torchlint.rules import PARSE_ERROR_CODE

TORCH_MISSING = "--verify needs torch: pip install 'torchlint[verify]'"
STARTUP_SECONDS = 60.0  # a fresh interpreter importing torch: about 2 s, more on a cold disk
EVIDENCE_CHARS = 400
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
# -I drops the working directory and PYTHONPATH from sys.path: the worker finds torchlint through
# the directory this copy was loaded from, appended after the user's site-packages.
BOOT = "import sys; sys.path.append(sys.argv[1]); from torchlint.verify.worker import main; main()"

Progress = Callable[[int, int, str], None]

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


@dataclass(frozen=True)
class Verification:
    verdict: str  # "confirmed", "refuted" or "inconclusive"
    evidence: str
    device: str
    seconds: float


def torch_missing() -> bool:
    """True when this interpreter (the one the workers run) cannot import torch."""
    try:
        return importlib.util.find_spec("torch") is None
    except (ImportError, ValueError):
        return True


def verify_findings(
    findings: Sequence[Finding],
    *,
    device: str = "auto",
    timeout: float = 20.0,
    import_mode: str = "definitions",
    progress: Progress | None = None,
    jobs: int | None = None,
) -> dict[Finding, Verification]:
    """A verification for every finding. ``progress(n, total, path)`` is called as the n-th file
    starts."""
    by_path: dict[str, list[Finding]] = {}
    out: dict[Finding, Verification] = {}
    for f in findings:
        if f.code == PARSE_ERROR_CODE:
            out[f] = Verification("inconclusive", "not verifiable: the file does not parse", device, 0.0)
        else:
            by_path.setdefault(f.path, []).append(f)
    started = 0
    lock = threading.Lock()

    def one_file(path: str, group: list[Finding]) -> dict[Finding, Verification]:
        nonlocal started
        with lock:
            started += 1
            if progress:
                progress(started, len(by_path), path)
        return dict(zip(group, verify_file(path, group, device=device, timeout=timeout, import_mode=import_mode)))

    workers = jobs or max(1, min(4, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers)
    _stopping.clear()
    try:
        for result in pool.map(lambda item: one_file(*item), by_path.items()):
            out.update(result)
    except BaseException:  # Ctrl-C: the workers are in their own sessions, so stop them here
        _stopping.set()
        with _live_lock:
            for proc in list(_live):
                _kill_group(proc, reap=False)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def verify_file(path: str, findings: Sequence[Finding], *, device: str, timeout: float, import_mode: str) -> list[Verification]:
    """The verifications of one file's findings, in order."""
    if any(f.cell is not None for f in findings):
        return _verify_notebook(path, findings, device=device, timeout=timeout, import_mode=import_mode)
    return _verify_module(path, findings, device=device, timeout=timeout, import_mode=import_mode)


def _verify_notebook(path: str, findings: Sequence[Finding], *, device: str, timeout: float, import_mode: str) -> list[Verification]:
    """A notebook's findings: its joined code cells (masked as the checks read them) written to a
    temporary .py file that runs with the notebook's directory first on sys.path, the findings
    moved to that file's lines, and the lines the evidence names moved back to cells."""
    from torchlint import notebook

    try:
        nb = notebook.read(Path(path))
    except (OSError, notebook.NotebookError) as e:
        return [Verification("inconclusive", f"cannot read the notebook: {e}", device, 0.0) for _ in findings]
    with tempfile.TemporaryDirectory(prefix="torchlint-notebook-") as directory:
        module = Path(directory) / "notebook_cells.py"
        module.write_text(nb.source, encoding="utf-8")
        moved = [nb.to_module(f) for f in findings]
        results = _verify_module(
            str(module), moved, device=device, timeout=timeout, import_mode=import_mode,
            directory=os.path.dirname(os.path.abspath(path)),
        )
    return [replace(v, evidence=nb.name_cells(v.evidence)) for v in results]


def _verify_module(
    path: str, findings: Sequence[Finding], *, device: str, timeout: float, import_mode: str, directory: str | None = None
) -> list[Verification]:
    results: list[Verification | None] = [None] * len(findings)
    pending = list(range(len(findings)))
    while pending and not _stopping.is_set():
        batch = [findings[i] for i in pending]
        run = _Worker(os.path.abspath(path), batch, device, timeout, import_mode, directory).run()
        for local, verification in run.results.items():
            results[pending[local]] = verification
        if run.failure is not None:
            stuck = len(run.results)  # the finding being probed when the worker stopped
            failed_now = pending if run.failed_before_probing else pending[stuck:stuck + 1]
            for i in failed_now:
                results[i] = Verification("inconclusive", run.failure, run.device, run.failure_seconds)
        pending = [i for i in pending if results[i] is None]
    return [r or Verification("inconclusive", "interrupted", device, 0.0) for r in results]


@dataclass
class _Run:
    device: str
    results: dict[int, Verification]
    failure: str | None = None
    failed_before_probing: bool = False
    failure_seconds: float = 0.0


class _Worker:
    """One child process over some findings of one file, read event by event against deadlines."""

    def __init__(self, path: str, findings: Sequence[Finding], device: str, timeout: float, import_mode: str, directory: str | None = None):
        self.path, self.findings, self.device, self.timeout, self.import_mode = path, findings, device, timeout, import_mode
        self.directory = directory
        self.buffer = b""

    def run(self) -> _Run:
        read_fd, write_fd = os.pipe()
        with tempfile.TemporaryDirectory(prefix="torchlint-verify-") as home:
            job = {
                "path": self.path,
                "import_mode": self.import_mode,
                "directory": self.directory,
                "device": self.device,
                "findings": [_finding_dict(f) for f in self.findings],
                "results_fd": write_fd,
                "cpu_seconds": STARTUP_SECONDS + self.timeout * (len(self.findings) + 1) + 5,
            }
            env = {**os.environ, "HOME": home, "TMPDIR": home, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", "-c", BOOT, PACKAGE_PARENT],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=home,
                    env=env,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                )
            finally:
                os.close(write_fd)
            with _live_lock:
                _live.add(proc)
                if _stopping.is_set():
                    _kill_group(proc, reap=False)
            try:
                try:
                    proc.stdin.write(json.dumps(job).encode())
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                return self._follow(proc, read_fd)
            finally:
                _kill_group(proc)
                with _live_lock:
                    _live.discard(proc)
                os.close(read_fd)

    def _follow(self, proc: subprocess.Popen, fd: int) -> _Run:
        run = _Run(self.device, {})
        phase = "startup"
        phase_start = time.monotonic()
        budget = STARTUP_SECONDS
        while True:
            try:
                event = self._next_event(fd, phase_start + budget)
            except TimeoutError:
                _kill_group(proc)
                where = {"startup": "while the worker started", "import": "at import"}.get(phase, "while probing")
                return self._fail(run, phase, f"timed out after {budget:g} s {where}", phase_start)
            if event is None:
                return self._fail(run, phase, self._death(proc, phase), phase_start)
            kind = event.get("event")
            if kind == "failed":
                return self._fail(run, phase, _clip(event.get("reason", "")), phase_start)
            if kind == "started":
                run.device = event.get("device", self.device)
                phase = "import"
            elif kind == "imported":
                phase = "probe"
            elif kind == "result" and phase == "probe":
                verdict = event.get("verdict")
                evidence = _clip(str(event.get("evidence", "")))
                run.results[len(run.results)] = Verification(verdict, evidence, run.device, float(event.get("seconds", 0.0)))
                if len(run.results) == len(self.findings):
                    return run
            phase_start, budget = time.monotonic(), self.timeout

    def _fail(self, run: _Run, phase: str, reason: str, since: float) -> _Run:
        run.failure = reason
        run.failed_before_probing = phase != "probe"
        run.failure_seconds = round(time.monotonic() - since, 3)
        return run

    def _next_event(self, fd: int, deadline: float) -> dict | None:
        """The next JSON line from the worker; None at end of file; TimeoutError at the deadline.
        A line that is not a JSON object is skipped."""
        while True:
            line, sep, rest = self.buffer.partition(b"\n")
            if sep:
                self.buffer = rest
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    return event
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk

    def _death(self, proc: subprocess.Popen, phase: str) -> str:
        """Why the worker went away without saying so."""
        try:
            status = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            status = proc.wait()
        where = {"startup": "before it started", "import": "at import"}.get(phase, "while probing")
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            limit = " (a CPU or memory limit?)" if name in ("SIGKILL", "SIGXCPU", "SIGSEGV") else ""
            return f"the worker was killed by {name} {where}{limit}"
        if phase == "startup":
            return f"the worker exited with status {status} {where}"
        return f"the file exited the process with status {status} {where}"


def _kill_group(proc: subprocess.Popen, reap: bool = True) -> None:
    """Kill the worker and whatever it started (its own session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if reap:
        proc.wait()


def _finding_dict(f: Finding) -> dict:
    return {
        "code": f.code,
        "line": f.line,
        "column": f.column,
        "end_line": f.end_line or f.line,
        "end_column": f.end_column or f.column,
        "message": f.message,
    }


def _clip(text: str) -> str:
    """One line, at most EVIDENCE_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"
