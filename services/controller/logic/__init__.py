"""The controller's pure logic: plans computed from the informers' caches, no I/O.

Only the controller uses these (scheduling, node lifecycle, allocation repair, Deployments, pod
garbage collection, pod claims, namespace deletion); logic two actors share lives in
`kubelab.core`. Each module is
synchronous and I/O-free (an import-linter contract in pyproject.toml keeps it so) and has its
table-driven unit tests in tests/unit.
"""
