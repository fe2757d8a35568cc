"""pyossl-async's conformance suite: proof from the C library itself that both backends behave like OpenSSL.

* ``catalogue``/``scenarios``: scenarios, each a plain function ``fn(backend) ->
  list[str]`` returning its trace (see ``trace.py`` for the line format);
* ``c/``: each scenario's C twin, printing the same trace from the real libcrypto
  (``ctwins.py`` compiles them on demand and caches the binaries);
* ``differential.py``: a hypothesis state machine driving random call sequences
  against both backends in lockstep;
* ``runner.py``: ``python -m pyossl_async conformance``.

A test fixture of the repository, not part of the installed package.
"""

from __future__ import annotations

from .catalogue import Scenario, all_scenarios, scenario
from .trace import Trace

__all__ = ["Scenario", "Trace", "all_scenarios", "scenario"]
