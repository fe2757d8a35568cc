"""``python -m pyossl_async conformance``: find the conformance suite and run it.

The suite (scenarios, C twins, runner) is a test fixture of the repository, in
its top-level ``conformance/`` folder; it is not part of the installed package.
With the README's editable install from a clone (``pip install -e .``), this
package's source lives in ``<clone>/src/pyossl_async``, so the suite is found
at ``<clone>/conformance``. ``PYOSSL_ASYNC_CONFORMANCE_DIR`` names a clone
explicitly. From an ordinary installation there is no suite, and the command
says where to get it.

What was asked for must run, or nothing runs (exit status 2): every
``--backend``, the backends the environment names (``PYOSSL_ASYNC_BACKEND``,
``PYOSSL_ASYNC_LIBCRYPTO`` for ``"openssl"``) and those listed in
``PYOSSL_ASYNC_REQUIRE_BACKENDS``, where ``C`` asks for the C twins (then a
missing compiler or OpenSSL headers is a failure, not a skipped column, unless
``--no-c`` is given).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import ModuleType
from typing import Dict, List, Optional, Tuple

from . import _registry
from ._cli import CliError, require_backends

__all__ = ["ENV_DIR", "ENV_REQUIRE", "find_suite", "load_suite", "requirements", "run_conformance"]

ENV_DIR = "PYOSSL_ASYNC_CONFORMANCE_DIR"
#: backends (and ``C``, the twins) that must run; the test suite reads it too
ENV_REQUIRE = "PYOSSL_ASYNC_REQUIRE_BACKENDS"
C_TWINS = "C"

NOT_FOUND = """\
pyossl_async conformance: the conformance suite was not found.
It lives in the repository's conformance/ folder (scenarios, their C twins and
the runner), which is not part of an installed package. To run it, clone the
pyossl-async repository and install that clone in editable mode:

    git clone <the pyossl-async repository> && cd pyossl-async
    python -m pip install -e '.[test]'
    python -m pyossl_async conformance

(or set {env} to the root of a clone). Looked in: {looked}
"""


def _candidates() -> List[str]:
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return [os.path.abspath(explicit)]
    here = os.path.dirname(os.path.abspath(__file__))  # <root>/src/pyossl_async
    src = os.path.dirname(here)
    # src layout (this repository), and a flat layout for good measure
    return [os.path.dirname(src), src]


def find_suite() -> tuple[Optional[str], List[str]]:
    """The root directory that holds ``conformance/__init__.py``, and where we looked."""
    looked = _candidates()
    for root in looked:
        if os.path.isfile(os.path.join(root, "conformance", "__init__.py")):
            return root, looked
    return None, looked


def load_suite(root: str) -> ModuleType:
    """Import ``<root>/conformance`` as the top-level package ``conformance``.

    Imported by file location, so another module called ``conformance`` on
    ``sys.path`` cannot be picked up instead.
    """
    existing = sys.modules.get("conformance")
    init = os.path.join(root, "conformance", "__init__.py")
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == init:
        return existing
    spec = importlib.util.spec_from_file_location(
        "conformance", init, submodule_search_locations=[os.path.dirname(init)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - a file we just found
        raise ImportError(f"cannot import the conformance suite from {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["conformance"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("conformance", None)
        raise
    return module


def requirements(args: argparse.Namespace) -> Tuple[Dict[str, str], bool]:
    """What must run: {backend: the option or setting that asks for it}, and whether the C twins must.

    Raises CliError for an unknown name in ``$PYOSSL_ASYNC_BACKEND`` or
    ``$PYOSSL_ASYNC_REQUIRE_BACKENDS``.
    """
    try:
        backends = _registry.requested_backends()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    for name in getattr(args, "backend", None) or []:
        backends.setdefault(name, f"--backend {name}")
    required = os.environ.get(ENV_REQUIRE, "")
    need_c = False
    for name in (n.strip() for n in required.split(",")):
        if not name:
            continue
        if name.upper() == C_TWINS:
            need_c = True
        elif name in _registry.BACKEND_NAMES:
            backends.setdefault(name, f"{ENV_REQUIRE}={required}")
        else:
            choices = ", ".join([*_registry.BACKEND_NAMES, C_TWINS])
            raise CliError(f"{ENV_REQUIRE}={required}: unknown name {name!r}; choose from {choices}")
    return backends, need_c and not getattr(args, "no_c", False)


def run_conformance(args: argparse.Namespace) -> int:
    """Run the suite with the CLI's arguments; exit status 2 when there is no suite.

    CliError (exit status 2 from ``main``) when something asked for cannot run.
    """
    root, looked = find_suite()
    if root is None:
        sys.stderr.write(NOT_FOUND.format(env=ENV_DIR, looked=", ".join(looked)))
        return 2
    backends, need_c = requirements(args)
    require_backends(backends)
    #: read by conformance/runner.py: no C twins is then a failure (exit 2)
    args.require_c = need_c
    load_suite(root)
    from conformance.runner import main

    return int(main(args))
