"""Judging a run and reporting it: the table, the disagreements with diffs and tracebacks, the JSON.

Each scenario is a :class:`Row` of :class:`Outcome` (one per column: the C
twin, then each backend), judged into :class:`Cell` against the row's
reference: the C twin's trace when it ran, else the first backend's. A cell is
``match``, or the first line where that column departs from the reference
(``L4: get_status(ctx) -> 5``), or ``ERROR: ...`` when the column did not
produce a trace (a crash, a scenario that raised, a twin that did not build).
The :class:`Report` holds every row and prints the terminal report (table,
notes, then every disagreement with a unified diff against the reference and
the tracebacks involved) and the JSON document (``--json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from pyossl_async._errors import plural

from .catalogue import Scenario
from .compare import compare_traces, format_diff
from .ctwins import TwinSetup
from .suite import Suite

__all__ = ["NO_TWIN", "C", "Cell", "Outcome", "Report", "Row", "judge"]

#: the C twins' column
C = "C"
#: what the C column shows for a scenario without a twin
NO_TWIN = "-"
#: the widest a cell is printed in the table (details are not cut)
CELL_WIDTH = 44


@dataclass
class Outcome:
    """One column's result for one scenario: its trace, or why there is none."""

    lines: Optional[List[str]] = None
    #: why there is no trace (a crash, an exception with its traceback, a compile error)
    error: str = ""
    #: a column that did not run, and why (``"-"``: no twin; ``"off"``)
    absent: str = ""
    #: exceptions the trace recorded as ``-> raises`` lines: ``{"line", "text", "traceback"}``
    exceptions: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class Cell:
    """What the table shows for one column of one row, and the details behind it."""

    text: str
    ok: bool
    detail: str = ""


@dataclass
class Row:
    """One scenario: every column's outcome, and (after :func:`judge`) its cells."""

    scenario: Scenario
    outcomes: Dict[str, Outcome]
    cells: Dict[str, Cell] = field(default_factory=dict)
    #: the column the others were compared with ("" when none produced a trace)
    reference: str = ""
    notes: List[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(cell.ok for cell in self.cells.values())


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _recorded(outcome: Outcome) -> str:
    """The tracebacks of the exceptions a column's trace recorded, for a disagreement's details."""
    parts = []
    for found in outcome.exceptions:
        parts.append(f"trace line {found['line']} recorded an exception: {found['text'].strip()}")
        parts.append(_indent(str(found["traceback"]).rstrip()))
    return "\n".join(parts)


def judge(row: Row, columns: Sequence[str]) -> None:
    """Fill ``row.cells``: every column against the reference."""
    outcomes = row.outcomes
    ref_name = ""
    for name in columns:
        o = outcomes.get(name)
        if o is not None and o.lines is not None and not o.error and not o.absent:
            ref_name = name
            break
    row.reference = ref_name
    ref = outcomes[ref_name].lines if ref_name else None
    for name in columns:
        o = outcomes.get(name, Outcome(absent="off"))
        if o.absent:
            row.cells[name] = Cell(o.absent, True)
            continue
        if o.error:
            first = o.error.strip().splitlines()[0] if o.error.strip() else "error"
            row.cells[name] = Cell(f"ERROR: {first}", False, o.error)
            continue
        assert o.lines is not None
        if ref is None or name == ref_name:
            row.cells[name] = Cell("match", True)
            continue
        # the python backend models OpenSSL 3.0: version-dependent lines may differ from a real library
        tolerant = name == "python"
        diff, tolerated = compare_traces(ref, o.lines, version_tolerant=tolerant)
        if diff is not None:
            shown = diff.got if diff.got is not None else f"(missing) {diff.want}"
            detail = [f"{name} vs {ref_name}: {diff.describe()}", format_diff(ref, o.lines, ref_name, name)]
            for col in (ref_name, name):
                if outcomes[col].exceptions:
                    detail.append(f"[{col}] " + _recorded(outcomes[col]))
            row.cells[name] = Cell(f"L{diff.index + 1}: {shown.strip()}", False, "\n".join(detail))
            continue
        if tolerated:
            row.cells[name] = Cell("match*", True)
            for d in tolerated:
                row.notes.append(
                    f"{row.scenario.name} line {d.index + 1}: {name} (OpenSSL 3.0 model) has {d.got!r}, "
                    f"{ref_name} has {d.want!r}; a documented difference between OpenSSL versions"
                )
        else:
            row.cells[name] = Cell("match", True)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class Report:
    """Everything a run found; :meth:`text` and :meth:`to_json` present it."""

    suite: Suite
    rows: List[Row]
    columns: List[str]
    #: one line describing each backend that ran, in column order
    backends: Dict[str, str]
    twins: TwinSetup
    #: the random differential test's verdict (empty when it was not part of the run)
    differential: Dict[str, Any]
    #: why a column that could have run did not (a backend unavailable here)
    skipped: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def disagreements(self) -> int:
        """Scenarios with any failing cell, plus one if the random differential test failed."""
        return sum(not r.agree for r in self.rows) + int(self.differential.get("ok") is False)

    @property
    def exit_status(self) -> int:
        """0 when everything agrees, 1 otherwise."""
        return 1 if self.disagreements else 0

    # -- the terminal report -------------------------------------------------------------

    def table(self) -> List[str]:
        """The table: one row per scenario, one column per C/backend."""
        rows, columns = self.rows, self.columns
        name_w = max([len("scenario")] + [len(r.scenario.name) for r in rows])
        col_w = {c: max([len(c)] + [len(_short(r.cells[c].text, CELL_WIDTH)) for r in rows]) for c in columns}
        head = "  ".join([f"{'scenario':<{name_w}}"] + [f"{c:<{col_w[c]}}" for c in columns]).rstrip()
        out = [head, "  ".join(["-" * name_w] + ["-" * col_w[c] for c in columns])]
        for r in rows:
            cells = [f"{_short(r.cells[c].text, CELL_WIDTH):<{col_w[c]}}" for c in columns]
            out.append("  ".join([f"{r.scenario.name:<{name_w}}", *cells]).rstrip())
        return out

    def header(self) -> List[str]:
        n_twins = sum(1 for r in self.rows if r.scenario.twin)
        out = [f"pyossl-async conformance: {plural(len(self.rows), 'scenario')}, {n_twins} with a C twin"]
        if not self.suite.builtin:
            twins = f" (C twins in {self.suite.c_dir})" if self.suite.c_dir else ""
            out.append(f"  suite    {self.suite.title}{twins}")
        tw = self.twins
        if tw.toolchain:
            tc = tw.toolchain
            out.append(
                f"  C        {tc.cc_version}, linked to {tc.libcrypto or '-lcrypto'}"
                f" ({tw.expected_version or 'version unknown'})"
            )
            out.append(f"           twins: {tw.compiled} compiled, {tw.cached} cached in {tc.cache_dir}")
        else:
            out.append(f"  C        not run: {tw.reason}; comparing the backends with each other only")
        for name, line in self.backends.items():
            out.append(f"  {name:<8} {line}")
        return out

    def disagreement_details(self) -> List[str]:
        """Every failing cell: the first difference, the diff, the tracebacks."""
        out = []
        for r in self.rows:
            for col in self.columns:
                cell = r.cells[col]
                if not cell.ok:
                    first, _, rest = cell.detail.strip().partition("\n")
                    out.append(f"  {r.scenario.name} [{col}]: {first}")
                    if rest.strip():
                        out.append(_indent(rest.rstrip()))
        return out

    def text(self) -> str:
        """The whole terminal report, ending in ``N scenarios, M disagreements``."""
        out = [*(f"conformance: {s}" for s in self.skipped), *self.header(), "", *self.table()]
        why = "misuse that C cannot survive, or Python-only behaviour" if self.suite.builtin else "see its why="
        out += [
            "",
            "match: the same trace as the reference (the C twin's when it ran, else the first backend's)",
            f"{NO_TWIN}: no C twin ({why}); off: C not run",
            "match*: the same but for version-dependent lines (see the notes)",
        ]
        notes = [n for r in self.rows for n in r.notes]
        if notes:
            out += ["", "notes:", *(f"  {n}" for n in notes)]
        details = self.disagreement_details()
        if details:
            out += ["", "disagreements:", *details]
        if self.differential:
            out += ["", differential_line(self.differential)]
        out += ["", f"{plural(len(self.rows), 'scenario')}, {plural(self.disagreements, 'disagreement')}"]
        return "\n".join(out) + "\n"

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> Dict[str, Any]:
        """Every trace, cell, error (with its traceback) and recorded exception, as JSON-able data."""
        tw = self.twins
        tc = tw.toolchain
        return {
            "suite": {"title": self.suite.title, "kind": self.suite.spec[0], "c_dir": self.suite.c_dir or None},
            "c": {
                "available": tc is not None,
                "reason": tw.reason,
                "compiler": tc.cc_version if tc else None,
                "libcrypto": tc.libcrypto if tc else None,
                "libcrypto_version": tw.expected_version,
                "compiled": tw.compiled,
                "cached": tw.cached,
                "cache_dir": tc.cache_dir if tc else None,
            },
            "backends": dict(self.backends),
            "columns": list(self.columns),
            "scenarios": [_row_json(r, self.columns) for r in self.rows],
            "differential": self.differential,
            "summary": {
                "scenarios": len(self.rows),
                "disagreements": self.disagreements,
                "seconds": round(self.seconds, 2),
            },
        }

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=2)
            f.write("\n")


def _row_json(r: Row, columns: Sequence[str]) -> Dict[str, Any]:
    return {
        "name": r.scenario.name,
        "group": r.scenario.group,
        "doc": r.scenario.doc,
        "twin": r.scenario.twin,
        "twin_path": r.scenario.twin_path,
        "why_no_twin": r.scenario.why_no_twin,
        "reference": r.reference,
        "agree": r.agree,
        "cells": {c: {"text": r.cells[c].text, "ok": r.cells[c].ok, "detail": r.cells[c].detail} for c in columns},
        "traces": {c: r.outcomes[c].lines for c in columns if r.outcomes[c].lines is not None},
        "errors": {c: r.outcomes[c].error for c in columns if r.outcomes[c].error},
        "exceptions": {c: r.outcomes[c].exceptions for c in columns if r.outcomes[c].exceptions},
        "notes": r.notes,
    }


def differential_line(verdict: Dict[str, Any]) -> str:
    """The report's line (or lines, on a failure) about the random differential test."""
    what = "random differential (hypothesis state machine, openssl vs python in lockstep)"
    if verdict.get("ok") is None:
        return f"{what}: skipped ({verdict.get('skipped', 'not run')})"
    if verdict["ok"]:
        programs, steps = plural(verdict["examples"], "program"), plural(verdict["steps"], "step")
        return f"{what}: {programs} of up to {steps}, all agree"
    body = verdict.get("failure", "")
    program = verdict.get("program", "")
    return f"{what}: DISAGREEMENT\n{body}\n{program}".rstrip()
