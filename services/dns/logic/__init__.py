"""The DNS server's pure logic: the zone's records and the table built from them, no I/O.

Only the DNS server uses these; logic two actors share lives in `kubelab.core`. Each module is
synchronous and I/O-free (an import-linter contract in pyproject.toml keeps it so) and has its
table-driven unit tests in tests/unit.
"""
