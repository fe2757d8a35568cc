"""Suites: which scenarios run together, where their C twins are, and how to load them again.

Three kinds, each loaded the same way in the runner and in its worker children
(which is why a :class:`Suite` carries the ``spec`` it was loaded from):

* the **built-in** suite, pyossl-async's own catalogue: the private package
  ``pyossl_async._suite`` (the repository's top-level ``conformance/`` folder,
  mapped into the wheel; see ``pyproject.toml``), with its modules in the order
  of ``pyossl_async._suite.scenarios.MODULES`` and its twins in ``_suite/c/``;
* a **folder** of the user's own scenario modules (``--scenarios PATH``): every
  ``*.py`` file not starting with ``_``, in name order (or the order of
  ``MODULES`` in the folder's ``__init__.py``, if it has one), with the twins in
  ``PATH/c/``. The folder is imported as a package of its own, under a private
  name, so its modules may import each other relatively (``from . import helpers``)
  and cannot shadow or be shadowed by other modules;
* a **catalogue** function ``module:function`` returning scenarios (the runner's
  own tests use it, through ``PYOSSL_ASYNC_CONFORMANCE_CATALOGUE``).

Within a suite, scenarios keep module order, then source order, and names must
be unique.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, List, Sequence, Tuple

import pyossl_async

from .catalogue import Scenario, scenarios_in

__all__ = [
    "BUILTIN",
    "CATALOGUE",
    "FOLDER",
    "Suite",
    "SuiteError",
    "builtin_suite",
    "load_catalogue",
    "load_folder",
    "load_spec",
]

BUILTIN = "builtin"
FOLDER = "folder"
CATALOGUE = "catalogue"

#: the private package the built-in suite is installed as
BUILTIN_PACKAGE = "pyossl_async._suite"
#: the folder of a user suite's C twins, inside the suite's folder
TWIN_FOLDER = "c"


class SuiteError(Exception):
    """A suite cannot be loaded (a missing folder, a module that does not import, duplicate names)."""


@dataclass(frozen=True)
class Suite:
    """A list of scenarios, where their twins are, and how a child process loads the same suite."""

    #: what the report calls it: ``"built-in"``, or the folder or catalogue it came from
    title: str
    scenarios: Tuple[Scenario, ...]
    #: the folder of the C twins
    c_dir: str
    #: ``(kind, value)``: ``(BUILTIN, "")``, ``(FOLDER, path)`` or ``(CATALOGUE, "module:function")``
    spec: Tuple[str, str]
    #: folders a child process needs on its ``sys.path`` to load the suite (a catalogue's import root)
    paths: Tuple[str, ...] = ()

    @property
    def builtin(self) -> bool:
        return self.spec[0] == BUILTIN

    def by_name(self) -> Dict[str, Scenario]:
        return {s.name: s for s in self.scenarios}


def _check_unique(scenarios: Sequence[Scenario], where: str) -> None:
    seen: Dict[str, str] = {}
    for s in scenarios:
        module = getattr(s.func, "__module__", "?")
        if s.name in seen:
            raise SuiteError(f"{where}: two scenarios are called {s.name!r} (in {seen[s.name]} and {module})")
        seen[s.name] = module


def _import(name: str, what: str) -> ModuleType:
    """Import ``name``; a failure becomes a SuiteError carrying the traceback."""
    try:
        return importlib.import_module(name)
    except Exception as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        raise SuiteError(f"cannot import {what}:\n{text}") from exc


def _collect(package: ModuleType, module_names: Sequence[str], c_dir: str, where: str) -> List[Scenario]:
    scenarios: List[Scenario] = []
    folder = next(iter(getattr(package, "__path__", [""])))
    for short in module_names:
        module = _import(f"{package.__name__}.{short}", os.path.join(folder, short + ".py"))
        scenarios.extend(scenarios_in(module, c_dir))
    _check_unique(scenarios, where)
    return scenarios


# -- the built-in suite ----------------------------------------------------------------


def _source_tree_package() -> ModuleType:
    """``<checkout>/conformance`` as ``pyossl_async._suite``, for a source tree that is not installed.

    An install (a wheel, or ``pip install -e .``) maps the folder to that name;
    running from a checkout with only ``src`` on the path (or an editable
    install made before the mapping existed) does not, so the folder next to
    ``src`` is imported under the same name.
    """
    src = os.path.dirname(os.path.dirname(os.path.abspath(pyossl_async.__file__)))
    init = os.path.join(os.path.dirname(src), "conformance", "__init__.py")
    if not os.path.isfile(init):
        raise SuiteError(
            f"the built-in conformance suite is not installed ({BUILTIN_PACKAGE} is missing); "
            "reinstall pyossl-async, or run your own scenarios with --scenarios PATH"
        )
    spec = importlib.util.spec_from_file_location(
        BUILTIN_PACKAGE, init, submodule_search_locations=[os.path.dirname(init)]
    )
    assert spec is not None and spec.loader is not None  # a file we just found
    module = importlib.util.module_from_spec(spec)
    sys.modules[BUILTIN_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[BUILTIN_PACKAGE]
        raise
    return module


def builtin_suite() -> Suite:
    """pyossl-async's own catalogue (see the module docstring)."""
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name != BUILTIN_PACKAGE:
            raise
        package = _source_tree_package()
    root = os.path.dirname(os.path.abspath(str(package.__file__)))
    scenarios_pkg = _import(f"{BUILTIN_PACKAGE}.scenarios", "the built-in scenarios")
    modules: Sequence[str] = scenarios_pkg.MODULES
    scenarios = _collect(scenarios_pkg, modules, os.path.join(root, TWIN_FOLDER), "the built-in suite")
    return Suite("built-in", tuple(scenarios), os.path.join(root, TWIN_FOLDER), (BUILTIN, ""))


# -- a folder of the user's scenarios ----------------------------------------------------


def _folder_package(path: str) -> ModuleType:
    """The folder as a package of its own (its ``__init__.py`` run, if it has one)."""
    name = "_pyossl_async_scenarios_" + hashlib.sha256(path.encode()).hexdigest()[:12]
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    init = os.path.join(path, "__init__.py")
    if os.path.isfile(init):
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
    else:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [path]
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        raise SuiteError(f"cannot import {init}:\n{text}") from exc
    return module


def load_folder(path: str) -> Suite:
    """The scenario modules in the folder ``path``, with their C twins in ``path/c/``."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise SuiteError(f"{path}: no such folder")
    package = _folder_package(path)
    listed = getattr(package, "MODULES", None)
    if listed is not None:
        modules = [str(m) for m in listed]
    else:
        modules = sorted(
            entry[:-3]
            for entry in os.listdir(path)
            if entry.endswith(".py") and not entry.startswith("_") and entry[:-3].isidentifier()
        )
    c_dir = os.path.join(path, TWIN_FOLDER)
    scenarios = _collect(package, modules, c_dir, path)
    if not scenarios:
        raise SuiteError(f"{path}: no scenarios found (functions decorated with @scenario, in *.py files)")
    return Suite(path, tuple(scenarios), c_dir, (FOLDER, path))


# -- a catalogue function -----------------------------------------------------------------


def load_catalogue(spec: str) -> Suite:
    """``module:function``: a function returning the scenarios (each with its own ``c_dir``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SuiteError(f"{spec!r}: expected module:function")
    module = _import(module_name, module_name)
    fn: Callable[[], Sequence[Scenario]] = getattr(module, attr)
    scenarios = list(fn())
    _check_unique(scenarios, spec)
    return Suite(spec, tuple(scenarios), "", (CATALOGUE, spec), _import_root(module))


def _import_root(module: ModuleType) -> Tuple[str, ...]:
    """The ``sys.path`` folder ``module`` was imported from (none for a module without a file)."""
    path = getattr(module, "__file__", None)
    if not path:
        return ()
    root = os.path.dirname(os.path.abspath(path))
    depth = module.__name__.count(".") + (1 if os.path.basename(path).startswith("__init__.") else 0)
    for _ in range(depth):
        root = os.path.dirname(root)
    return (root,)


def load_spec(kind: str, value: str) -> Suite:
    """The suite a :attr:`Suite.spec` names (what worker children call)."""
    if kind == BUILTIN:
        return builtin_suite()
    if kind == FOLDER:
        return load_folder(value)
    if kind == CATALOGUE:
        return load_catalogue(value)
    raise SuiteError(f"unknown kind of suite {kind!r}")
