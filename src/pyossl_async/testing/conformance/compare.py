"""Comparing traces line by line, what counts as agreement, and a readable diff.

The reference of a scenario is its C twin's trace when the twin ran, else the
first backend's ("openssl" before "python"). Every other column must equal it
line for line; the first differing line is what the table shows.

One tolerance, and only one: a *version-dependent* line (``~ text -> value``, see
``trace.py``) may differ in its value between the ``"python"`` backend and a
reference from a real libcrypto. The ``"python"`` backend models OpenSSL 3.0
(its documented target); OpenSSL 3.6 changed a few results (docs/openssl-behaviour.md,
Versions: ``init_thread(max_size > INT_MAX)`` fails from 3.6 on). Such a line must
still be present, in the same place, with the same call text; only the value
after ``->`` may differ, and the difference is reported (``match*`` and a note),
not hidden. Between C and ``"openssl"``, which run the same library, there is no
tolerance at all.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .trace import VERSION_MARK

__all__ = ["Difference", "compare_traces", "format_diff"]


@dataclass(frozen=True)
class Difference:
    """One line where ``got`` departs from ``want`` (0-based ``index``)."""

    index: int
    want: Optional[str]  # None: got has an extra line
    got: Optional[str]  # None: got is missing a line

    def describe(self) -> str:
        where = f"line {self.index + 1}"
        if self.got is None:
            return f"{where}: missing {self.want!r}"
        if self.want is None:
            return f"{where}: extra {self.got!r}"
        return f"{where}: got {self.got!r}, want {self.want!r}"


def _version_call(line: str) -> Optional[str]:
    """The call text of a version-dependent line (``None`` for an ordinary line)."""
    if not line.startswith(VERSION_MARK) or " -> " not in line:
        return None
    return line.rsplit(" -> ", 1)[0]


def compare_traces(
    want: Sequence[str], got: Sequence[str], *, version_tolerant: bool = False
) -> Tuple[Optional[Difference], List[Difference]]:
    """``(first real difference or None, tolerated version-dependent differences)``."""
    tolerated: List[Difference] = []
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        if w == g:
            continue
        if version_tolerant and w is not None and g is not None:
            call = _version_call(w)
            if call is not None and call == _version_call(g):
                tolerated.append(Difference(i, w, g))
                continue
        return Difference(i, w, g), tolerated
    return None, tolerated


def format_diff(
    want: Sequence[str], got: Sequence[str], want_name: str = "want", got_name: str = "got", context: int = 3
) -> str:
    """A unified diff from ``want`` to ``got`` ("" when they are equal).

    ``-`` lines are the reference's, ``+`` lines the other column's, with
    ``context`` unchanged lines around each change and line numbers in the
    ``@@`` headers, as ``diff -u`` prints them.
    """
    return "\n".join(difflib.unified_diff(list(want), list(got), want_name, got_name, n=context, lineterm=""))
