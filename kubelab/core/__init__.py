"""Pure logic shared by two or more actors, or by an actor and the CLI/SDK: no I/O.

The rule for where pure logic lives:

- Here, in `kubelab.core`, when two or more actors use it, or an actor and the user's tools
  (`kubelab.cli`, `kubelab.lab`, `kubelab.client`): the kinds, validation (the apiserver's gate,
  which `kubelab apply` runs before sending), selectors, allocators, EndpointSlice plans (the
  controller writes them, the proxies read them), the proxy's rules (the proxies serve them,
  `kubelab describe` shows them), kubectl's cells (`printing`: the CLI and the HTTP API's Tables).
- With the actor, in its own `logic/` package, when only that actor uses it: the controller's
  scheduling, Deployments, node lifecycle, repair, pod GC and claims, namespace deletion
  (`services/controller/logic/`); the DNS zone (`services/dns/logic/`); the cloud-stub's
  listeners and targets (`services/cloud_stub/logic/`); the node agent's probe state, Service
  environment, request checks and fd budget (`node_agent/logic/`); the apiserver's request-key
  checks and field selectors (`services/apiserver/logic/`).

Both places hold the same kind of module: synchronous, I/O-free, small, named for what it holds,
with table-driven (and hypothesis) unit tests in tests/unit. The import-linter contracts in
pyproject.toml keep both pure (no store, RPC, event loop or processes). When a second user
appears for an actor's module, it moves here.
"""
