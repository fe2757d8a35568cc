"""The scenario catalogue. Importing this package registers every scenario, module by module.

``MODULES`` fixes the catalogue's order (the table's rows): from the man page and
OpenSSL's own tests, through single jobs, pools, blocking, wait contexts,
callbacks, interleaving and threads, to misuse. It does not depend on import
order, which tools may rearrange.

To add a scenario: write a function in the module of its topic (or a new module
listed in ``MODULES``), decorate it with ``@scenario``, and write its C twin
``conformance/c/<name>.c`` (or ``@scenario(c=False, why=...)`` when C cannot
express it). See the README's Conformance section.
"""

from __future__ import annotations

import importlib

MODULES = ("asynctest", "jobs", "pool", "blocking", "waitctx", "callbacks", "interleave", "threads", "misuse")

__all__ = ["MODULES"]

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
