"""Raw ctypes layer over libssl: loading it beside the libcrypto in use, the
prototype table, the exceptions its errchecks raise.

No policy lives here: this package knows C names and C types, and nothing about
thread states, jobs or the public API (that is ``pyossl_async.tls``).
"""

from ._errors import TLSCallError, TLSEOFError, TLSError, TLSProtocolError, TLSSyscallError
from ._loader import LibSSL, candidate_paths, load_libssl
from ._prototypes import PROTOTYPES, Prototype

__all__ = [
    "PROTOTYPES",
    "LibSSL",
    "Prototype",
    "TLSCallError",
    "TLSEOFError",
    "TLSError",
    "TLSProtocolError",
    "TLSSyscallError",
    "candidate_paths",
    "load_libssl",
]
