"""The Kubernetes HTTP API front of the apiserver.

`server` (aiohttp: the listener, one route, errors as Status objects), `routing`
(paths -> kinds), `discovery`, `resources` (the verbs, on the same `Registry` as
gRPC), and the pure translations: `convert` (protobuf <-> Kubernetes JSON), `tables`
(server-side Tables), `fields` (field selectors), `options` (query parameters, watch
events), `errors` (Status objects). The patch strategies and the OpenAPI documents
are pure modules of `services.apiserver.k8s`, called from `resources` when they land.
"""
