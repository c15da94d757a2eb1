"""The apiserver's own pure logic (beyond `k8s/`, the Kubernetes API's patches and schema): no I/O.

Only the apiserver uses these (request keys, field selectors); logic it shares with other actors
or the CLI (validation, allocators, selectors) lives in `kubelab.core`. Each module is synchronous
and I/O-free (an import-linter contract in pyproject.toml keeps it so) and has its table-driven
unit tests in tests/unit.
"""
