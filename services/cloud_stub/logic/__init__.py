"""The cloud-stub's pure logic: load balancers' listeners and the nodes behind them, no I/O.

Only the cloud-stub uses these; logic two actors share (the address pool `kubelab.core.lb_pool`,
which the launcher checks too, and the controller's requests `kubelab.core.lb_requests`) lives in
`kubelab.core`. Each module is synchronous and I/O-free (an import-linter contract in
pyproject.toml keeps it so) and has its table-driven unit tests in tests/unit.
"""
