"""Backend implementations. Import them through ``pyossl_async.get_backend``."""
