"""``python -m pyossl_async conformance``: find the conformance suite and run it.

The suite (scenarios, C twins, runner) is a test fixture of the repository, in
its top-level ``conformance/`` folder; it is not part of the installed package.
With the README's editable install from a clone (``pip install -e .``), this
package's source lives in ``<clone>/src/pyossl_async``, so the suite is found
at ``<clone>/conformance``. ``PYOSSL_ASYNC_CONFORMANCE_DIR`` names a clone
explicitly. From an ordinary installation there is no suite, and the command
says where to get it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import ModuleType
from typing import List, Optional

__all__ = ["ENV_DIR", "find_suite", "load_suite", "run_conformance"]

ENV_DIR = "PYOSSL_ASYNC_CONFORMANCE_DIR"

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


def run_conformance(args: argparse.Namespace) -> int:
    """Run the suite with the CLI's arguments; exit status 2 when there is no suite."""
    root, looked = find_suite()
    if root is None:
        sys.stderr.write(NOT_FOUND.format(env=ENV_DIR, looked=", ".join(looked)))
        return 2
    load_suite(root)
    from conformance.runner import main

    return int(main(args))
