"""Interpreter-state and stack-switching machinery used by the ``openssl`` backend.

Why it exists is explained in ``hazards.md`` and the README: an OpenSSL job is a
C fibre, and Python code paused inside it needs its own ``PyThreadState`` and a
C stack larger than OpenSSL 3.0's 32 KiB. Everything here is private; the pure
Python backend never imports it.
"""
