"""Starting worker children (``_worker.py``) and reading their messages, with a timeout.

A child runs the same interpreter, and imports the same ``pyossl_async`` as the
runner: the folder it was imported from goes first on the child's
``PYTHONPATH``, followed by any extra folders (where a ``module:function``
catalogue was imported from) and the inherited ``PYTHONPATH``; the current
directory is not on its ``sys.path``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pyossl_async as pa

__all__ = ["child_env", "run_worker", "worker_command"]

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pa.__file__)))
#: ``-c`` puts the current directory first on ``sys.path``: dropped, so that nothing there shadows the package
_BOOT = (
    "import sys; sys.path[:1] = [] if sys.path[:1] == [''] else sys.path[:1]; "
    "from pyossl_async.testing.conformance._worker import main; sys.exit(main(sys.argv[1:]))"
)


def child_env(extra_paths: Sequence[str] = ()) -> Dict[str, str]:
    """The environment of a worker child (see the module docstring)."""
    env = dict(os.environ)
    paths = [PACKAGE_PARENT, *extra_paths, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def worker_command(args: Sequence[str]) -> List[str]:
    return [sys.executable, "-c", _BOOT, *args]


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:].strip()


def run_worker(
    args: Sequence[str],
    timeout: float,
    on_message: Callable[[Dict[str, Any]], None],
    extra_paths: Sequence[str] = (),
) -> Tuple[Optional[int], str, bool]:
    """Run one worker child; feed its messages (one JSON object a line) to ``on_message``.

    Returns (exit status, or None if it was killed; the tail of its stderr;
    whether it timed out waiting for a message). ``timeout`` is per message,
    not for the whole child.
    """
    with tempfile.NamedTemporaryFile(prefix="pyossl-async-worker-", suffix=".log", delete=False) as log:
        log_path = log.name
    try:
        with open(log_path, "wb") as err:
            proc = subprocess.Popen(
                worker_command(args), stdout=subprocess.PIPE, stderr=err, env=child_env(extra_paths)
            )
        messages: "queue.Queue[Optional[bytes]]" = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                messages.put(raw)
            messages.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        timed_out = False
        try:
            while True:
                try:
                    raw = messages.get(timeout=timeout)
                except queue.Empty:
                    timed_out = True
                    proc.kill()
                    break
                if raw is None:
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue  # not a protocol line
                on_message(message)
        finally:
            if proc.poll() is None and timed_out:
                proc.kill()
            status = proc.wait()
            reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        return (None if timed_out else status), _tail(log_path), timed_out
    finally:
        os.unlink(log_path)
