"""Raw ctypes layer over libcrypto: loading, the prototype table, the error queue.

No policy lives here: this package knows C names and C types, and nothing about
jobs, thread states or the public API.
"""

from ._calls import c_call
from ._dlinfo import loaded_library_file
from ._errqueue import drain_errors, err_get_lib, err_get_reason
from ._loader import ENV_LIBCRYPTO, LibCrypto, LibraryRejected, candidate_paths, load_libcrypto
from ._prototypes import PROTOTYPES, Prototype

__all__ = [
    "ENV_LIBCRYPTO",
    "PROTOTYPES",
    "LibCrypto",
    "LibraryRejected",
    "Prototype",
    "c_call",
    "candidate_paths",
    "drain_errors",
    "err_get_lib",
    "err_get_reason",
    "load_libcrypto",
    "loaded_library_file",
]
