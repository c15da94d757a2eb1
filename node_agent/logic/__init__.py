"""The node agent's pure logic: probe state, pod environments, request checks, fd budgets; no I/O.

Only the node agent uses these; logic it shares with other actors (the proxy's rules, endpoint
choice, pod status) lives in `kubelab.core`. Each module is synchronous and I/O-free (an
import-linter contract in pyproject.toml keeps it so) and has its table-driven unit tests in
tests/unit.
"""
