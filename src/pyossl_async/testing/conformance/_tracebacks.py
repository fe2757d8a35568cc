"""Tracebacks of exceptions in scenarios, with pyossl_async's own frames folded away.

An exception raised inside a job's function travels out through ``Trace``,
``start_job`` and the backend's job machinery: a traceback of a typo in a
scenario's job is mostly frames of this package, between the scenario's call
(``t.start(...)``) and the job's line with the typo. A run of the package's
frames *followed by a frame of other code* is folded into one line
(``... 7 frames in pyossl_async ...``). Frames of the package at the innermost
end are kept: there the exception was raised by the package itself, and they
show where.
"""

from __future__ import annotations

import os
import traceback
from types import TracebackType
from typing import Any, Iterable, List, Optional

import pyossl_async

__all__ = ["format_exception"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(pyossl_async.__file__)) + os.sep


def _ours(frame: traceback.FrameSummary) -> bool:
    return os.path.abspath(frame.filename).startswith(_PACKAGE_DIR)


class _FoldedStack(traceback.StackSummary):
    """A stack that prints folded runs as one line (``folds``: frame index -> frames folded before it)."""

    folds: "dict[int, int]"

    def format(self, **kwargs: Any) -> List[str]:
        out: List[str] = []
        start = 0
        for index in [*sorted(self.folds), len(self)]:
            chunk = traceback.StackSummary.from_list(list(self[start:index]))
            out.extend(traceback.StackSummary.format(chunk, **kwargs))
            if index < len(self):
                out.append(f"  ... {self.folds[index]} frames in pyossl_async ...\n")
            start = index
        return out


def _fold(frames: Iterable[traceback.FrameSummary]) -> _FoldedStack:
    kept: List[traceback.FrameSummary] = []
    folds = {}
    run: List[traceback.FrameSummary] = []
    for frame in frames:
        if _ours(frame):
            run.append(frame)
            continue
        if len(run) > 1:  # followed by a frame of other code: fold
            folds[len(kept)] = len(run)
        else:
            kept.extend(run)
        run = []
        kept.append(frame)
    kept.extend(run)  # the innermost frames are where the exception was raised: always shown
    stack = _FoldedStack.from_list(kept)
    folded = _FoldedStack(stack)
    folded.folds = folds
    return folded


def _fold_chain(te: traceback.TracebackException, seen: "set[int]") -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = _fold(te.stack)
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _fold_chain(chained, seen)


def format_exception(exc: BaseException, tb: Optional[TracebackType] = None) -> str:
    """``exc`` and its traceback (``tb``, default its own), as ``traceback.format_exception`` prints
    them, but with runs of pyossl_async's frames between frames of other code folded."""
    te = traceback.TracebackException(type(exc), exc, tb if tb is not None else exc.__traceback__)
    _fold_chain(te, set())
    return "".join(te.format())
