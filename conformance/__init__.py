"""pyossl-async's built-in conformance suite: the scenarios (``scenarios/``) and their C twins (``c/``).

Installed as the private package ``pyossl_async._suite`` (``pyproject.toml`` maps
this folder to that name, in the wheel and in an editable install), so that
``python -m pyossl_async conformance`` runs wherever the package is installed.
The machinery that runs it is public: :mod:`pyossl_async.testing.conformance`.
Nothing here is meant to be imported by other code; load the suite with
``pyossl_async.testing.conformance.builtin_suite()``.
"""
