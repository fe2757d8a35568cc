"""Declaring scenarios: the ``@scenario`` decorator and the :class:`Scenario` it describes.

A scenario is a plain function ``fn(backend) -> list[str]``: it drives the API on
that backend through a :class:`~.trace.Trace` and returns the trace. ``@scenario``
only marks the function (with its C twin's file name, or the reason it has none)
and returns it unchanged, so pytest and other code can call it directly.

There is no global registry: which functions make up a suite, in which order,
and where their twins live is decided when a suite is loaded (:mod:`.suite`),
from the marks on the functions of its modules. Two suites may therefore both
have a scenario called ``status_roundtrip``, and reloading a module does not
register anything twice.

A scenario with a twin has ``<suite's twin folder>/<name>.c`` (or the file named
by ``c=``), a C program printing the same trace from the real libcrypto. One
without a twin must say why (``why=``): misuse that is undefined behaviour in C
where the Python API raises instead, or Python-only features.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, List, Optional, Union, overload

import pyossl_async as pa

__all__ = ["Scenario", "ScenarioFunc", "scenario", "scenarios_in", "select"]

#: what a scenario is: a function from a backend to its trace
ScenarioFunc = Callable[[pa.Backend], List[str]]

#: the attribute ``@scenario`` sets on a function
_MARK = "__pyossl_async_scenario__"


@dataclass(frozen=True)
class _Declaration:
    twin: Optional[str]
    why_no_twin: str


@dataclass(frozen=True)
class Scenario:
    """One scenario of a suite, with everything the runner and the report need."""

    name: str
    func: ScenarioFunc
    #: the first paragraph of the function's docstring: what it checks
    doc: str
    #: the module it comes from (the last part of its name); reports group by it
    group: str
    #: the C twin's file name, relative to ``c_dir`` (an absolute path is used as is); None: no twin
    twin: Optional[str]
    #: why there is no twin (empty when there is one)
    why_no_twin: str
    #: the folder of the suite's C twins
    c_dir: str = ""

    @property
    def twin_path(self) -> Optional[str]:
        """The twin's source file, or None when the scenario has none."""
        return os.path.join(self.c_dir, self.twin) if self.twin else None


@overload
def scenario(fn: ScenarioFunc) -> ScenarioFunc: ...


@overload
def scenario(*, c: Union[bool, str] = True, why: str = "") -> Callable[[ScenarioFunc], ScenarioFunc]: ...


def scenario(
    fn: Optional[ScenarioFunc] = None, *, c: Union[bool, str] = True, why: str = ""
) -> Union[ScenarioFunc, Callable[[ScenarioFunc], ScenarioFunc]]:
    """Mark a function as a scenario; returns it unchanged.

    ``@scenario``: its C twin is ``<name>.c`` in the suite's twin folder.
    ``@scenario(c="file.c")``: the twin has another name.
    ``@scenario(c=False, why="...")``: it has no twin, for the reason given (required).
    """

    def mark(func: ScenarioFunc) -> ScenarioFunc:
        if c is False and not why:
            raise ValueError(f"scenario {func.__name__!r} has no C twin: say why (why=...)")
        twin = None if c is False else (c if isinstance(c, str) else f"{func.__name__}.c")
        setattr(func, _MARK, _Declaration(twin, "" if twin else why))
        return func

    return mark(fn) if fn is not None else mark


def scenarios_in(module: ModuleType, c_dir: str) -> List[Scenario]:
    """The scenarios defined in ``module``, in source order, with their twins in ``c_dir``.

    A scenario imported from another module is not counted here, only where it
    is defined.
    """
    found = []
    for value in list(vars(module).values()):
        declared = getattr(value, _MARK, None)
        if not isinstance(declared, _Declaration) or getattr(value, "__module__", None) != module.__name__:
            continue
        doc = inspect.getdoc(value) or ""
        found.append(
            Scenario(
                name=value.__name__,
                func=value,
                doc=doc.split("\n\n", 1)[0].replace("\n", " "),
                group=module.__name__.rsplit(".", 1)[-1],
                twin=declared.twin,
                why_no_twin=declared.why_no_twin,
                c_dir=c_dir,
            )
        )
    return found


def select(scenarios: List[Scenario], substring: Optional[str]) -> List[Scenario]:
    """The scenarios whose name contains ``substring`` (all of them for None or "")."""
    if not substring:
        return list(scenarios)
    return [s for s in scenarios if substring in s.name]
