"""The programs pods run: container images kubelab ships (today `kubelab/echo`).

A workload is not an actor: nothing of the cluster imports it. The node agent starts it by
module name (`python -m workloads.echo`, node_agent/launch.py); it imports only the shared
library `kubelab` (an import-linter contract in pyproject.toml keeps it so).
"""
