"""Waiting for what an engine asked for, below the backends and the drivers.

:mod:`.watch` decides what a paused job waits for (sans I/O); :mod:`.notify` is how
an engine's wait-ctx callback reaches a waiting thread without running Python;
:mod:`.blocking` waits with ``poll(2)`` and closes a paused job step by step.
The backends close jobs with these; the drivers (``pyossl_async.drive``) wait
with them. Nothing here imports a backend or a driver.
"""
