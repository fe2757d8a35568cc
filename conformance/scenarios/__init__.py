"""The scenario catalogue. Importing this package registers every scenario, module by module.

To add a scenario: write a function in the module of its topic (or a new module
listed below), decorate it with ``@scenario``, and write its C twin
``conformance/c/<name>.c`` (or ``@scenario(c=False, why=...)`` when C cannot
express it). See the README's Conformance section.
"""

from . import asynctest, blocking, callbacks, interleave, jobs, misuse, pool, threads, waitctx

__all__ = ["asynctest", "blocking", "callbacks", "interleave", "jobs", "misuse", "pool", "threads", "waitctx"]
