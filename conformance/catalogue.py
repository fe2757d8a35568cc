"""The scenario registry: what a scenario is and how one is declared.

A scenario is a plain function ``fn(backend) -> list[str]``: it drives the API on
that backend through a :class:`~conformance.trace.Trace` and returns the trace.
The ``@scenario`` decorator only records it (with its C twin, or the reason it has
none) and returns the function unchanged, so pytest, the CLI and other code can
call it directly.

Every scenario with a twin has ``c/<name>.c`` (or the file named by ``c=``), a C
program printing the same trace from the real libcrypto. A scenario without a
twin must say why (``why=``): these are misuse cases where C has undefined
behaviour and the Python API raises instead, or Python-only features.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union, overload

import pyossl_async as pa

__all__ = ["C_DIR", "Scenario", "ScenarioFunc", "all_scenarios", "scenario", "select"]

ScenarioFunc = Callable[[pa.Backend], List[str]]

#: where the C twins and their shared header live
C_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")


@dataclass(frozen=True)
class Scenario:
    """One catalogue entry."""

    name: str
    func: ScenarioFunc
    #: the first paragraph of the function's docstring: what it checks
    doc: str
    #: the module it comes from (the table groups by it)
    group: str
    #: the C twin's file name in ``C_DIR``, or None when it has none
    twin: Optional[str]
    #: why there is no twin (empty when there is one)
    why_no_twin: str

    @property
    def twin_path(self) -> Optional[str]:
        return os.path.join(C_DIR, self.twin) if self.twin else None


_REGISTRY: Dict[str, Scenario] = {}


@overload
def scenario(fn: ScenarioFunc) -> ScenarioFunc: ...


@overload
def scenario(*, c: Union[bool, str] = True, why: str = "") -> Callable[[ScenarioFunc], ScenarioFunc]: ...


def scenario(
    fn: Optional[ScenarioFunc] = None, *, c: Union[bool, str] = True, why: str = ""
) -> Union[ScenarioFunc, Callable[[ScenarioFunc], ScenarioFunc]]:
    """Register a scenario. ``c=False, why="..."`` for one that cannot be written in C;
    ``c="file.c"`` when its twin has another name than ``<function name>.c``.
    """

    def register(func: ScenarioFunc) -> ScenarioFunc:
        name = func.__name__
        if name in _REGISTRY:
            raise ValueError(f"duplicate scenario name {name!r}")
        if c is False and not why:
            raise ValueError(f"scenario {name!r} has no C twin: say why (why=...)")
        twin = None if c is False else (c if isinstance(c, str) else f"{name}.c")
        doc = inspect.getdoc(func) or ""
        _REGISTRY[name] = Scenario(
            name=name,
            func=func,
            doc=doc.split("\n\n", 1)[0].replace("\n", " "),
            group=func.__module__.rsplit(".", 1)[-1],
            twin=twin,
            why_no_twin="" if twin else why,
        )
        return func

    return register(fn) if fn is not None else register


def all_scenarios() -> List[Scenario]:
    """Every registered scenario, in catalogue order: ``scenarios.MODULES``, then source order."""
    from .scenarios import MODULES  # importing registers them

    rank = {name: i for i, name in enumerate(MODULES)}
    # sorted() is stable: within a module, scenarios keep their registration (source) order
    return sorted(_REGISTRY.values(), key=lambda s: rank.get(s.group, len(rank)))


def select(scenarios: List[Scenario], substring: Optional[str]) -> List[Scenario]:
    """The scenarios whose name contains ``substring`` (all of them for None)."""
    if not substring:
        return list(scenarios)
    return [s for s in scenarios if substring in s.name]
