"""The built-in scenarios, one module per topic.

``MODULES`` fixes the catalogue's order (the table's rows): from the man page and
OpenSSL's own tests, through single jobs, pools, blocking, wait contexts,
callbacks, interleaving and threads, to misuse. The suite loader
(``pyossl_async.testing.conformance.builtin_suite``) imports them in this order.

To add a scenario: write a function in the module of its topic (or a new module
listed in ``MODULES``), decorate it with ``@scenario``, and write its C twin
``conformance/c/<name>.c`` (or ``@scenario(c=False, why=...)`` when C cannot
express it). See docs/conformance.md.
"""

from __future__ import annotations

MODULES = ("asynctest", "jobs", "pool", "blocking", "waitctx", "callbacks", "interleave", "threads", "misuse")

__all__ = ["MODULES"]
