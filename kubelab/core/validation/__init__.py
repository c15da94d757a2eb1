"""What an API object must look like before it is stored: Kubernetes' rules and wording.

- `objects`: the apiserver's gate, for every kind (`apply_defaults`, `validate_object`,
  `validate_key`, `validate_update`); start reading there.
- `syntax`: the generic checks (DNS labels, qualified names, IPs, CIDRs, ports, int-or-string).
- `meta`: what every kind shares (metadata, names, labels, protocols).
- `services`, `pods` (Pod, Deployment), `cluster` (EndpointSlice, Node), `namespaces` (Namespace,
  Event), `access` (ServiceAccount, Role, ClusterRole, RoleBinding, ClusterRoleBinding): the
  per-kind rules.
- `size`: the encoded size limit.

This file imports nothing, so a module that needs one check (`syntax.is_port_num`) does not load
every kind's rules.
"""
