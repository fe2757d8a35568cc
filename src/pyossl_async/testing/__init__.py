"""Tools for testing code built on pyossl_async.

* :class:`~.pause_engine.PauseEngine`: a test engine, compiled on demand, whose
  operations pause jobs from inside C the way real async engines do.
"""

from .pause_engine import EngineUnavailable, PauseEngine

__all__ = ["EngineUnavailable", "PauseEngine"]
