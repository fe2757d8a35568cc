"""``python -m pyossl_async conformance``: check what must run, load the suite, run it.

The suite is pyossl-async's built-in one, installed with the package (the
repository's ``conformance/`` folder, as the private package
``pyossl_async._suite``), or, with ``--scenarios PATH``, a folder of the user's
own scenario modules with their C twins in ``PATH/c/``. The machinery is
:mod:`pyossl_async.testing.conformance`; the guide is docs/conformance.md.

What was asked for must run, or nothing runs (exit status 2): every
``--backend``, the backends the environment names (``PYOSSL_ASYNC_BACKEND``,
``PYOSSL_ASYNC_LIBCRYPTO`` for ``"openssl"``) and those listed in
``PYOSSL_ASYNC_REQUIRE_BACKENDS``, where ``C`` asks for the C twins (then a
missing compiler or OpenSSL headers is a failure, not a skipped column, unless
``--no-c`` is given). A suite that cannot be loaded (no such folder, a module
that does not import: its traceback is shown) is exit status 2 as well.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, Tuple

from .. import _registry, _settings
from .._errors import SettingError
from ..testing import _settings as _testing_settings
from ._support import CliError, require_backends

__all__ = ["ENV_REQUIRE", "requirements", "run_conformance"]

#: backends (and ``C``, the twins) that must run; the test suite reads it too
ENV_REQUIRE = _testing_settings.ENV_REQUIRE_BACKENDS
C_TWINS = _testing_settings.C_TWINS


def requirements(args: argparse.Namespace) -> Tuple[Dict[str, str], bool]:
    """What must run: {backend: the option or setting that asks for it}, and whether the C twins must.

    Raises CliError for an unknown name in ``$PYOSSL_ASYNC_BACKEND`` or
    ``$PYOSSL_ASYNC_REQUIRE_BACKENDS``.
    """
    try:
        backends = _registry.requested_backends()
        required = _testing_settings.required_backends()
    except SettingError as exc:
        raise CliError(str(exc)) from None
    for name in getattr(args, "backend", None) or []:
        backends.setdefault(name, f"--backend {name}")
    for name in required:
        if name != C_TWINS:
            backends.setdefault(name, _settings.assignment(ENV_REQUIRE))
    need_c = C_TWINS in required
    return backends, need_c and not getattr(args, "no_c", False)


def run_conformance(args: argparse.Namespace) -> int:
    """Run the suite with the CLI's arguments; the exit status (0 agree, 1 disagree, 2 cannot run).

    CliError (exit status 2 from ``main``) when something asked for cannot run.
    """
    backends, need_c = requirements(args)
    require_backends(backends)

    from ..testing.conformance import SuiteError, load_folder, run
    from ..testing.conformance.runner import default_suite

    folder = getattr(args, "scenarios", None)
    try:
        suite = load_folder(folder) if folder else default_suite()
    except SuiteError as exc:
        sys.stderr.write(f"pyossl_async conformance: {str(exc).rstrip()}\n")
        return 2
    return run(
        suite,
        backends=getattr(args, "backend", None),
        c=not getattr(args, "no_c", False),
        require_c=need_c,
        select=getattr(args, "select", None),
        json_path=getattr(args, "json", None),
    )
