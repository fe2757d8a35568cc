"""Raw ctypes layer over libcrypto: loading, the prototype table, the error queue.

No policy lives here: this package knows C names and C types, and nothing about
jobs, thread states or the public API.
"""

from ._errqueue import drain_errors, err_get_lib, err_get_reason
from ._loader import LibCrypto, candidate_paths, load_libcrypto
from ._prototypes import PROTOTYPES, Prototype

__all__ = [
    "PROTOTYPES",
    "LibCrypto",
    "Prototype",
    "candidate_paths",
    "drain_errors",
    "err_get_lib",
    "err_get_reason",
    "load_libcrypto",
]
