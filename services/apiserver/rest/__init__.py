"""The Kubernetes HTTP API front of the apiserver.

`server` (aiohttp: the listener, one route, errors as Status objects), `routing`
(paths -> kinds), `discovery`, `resources` (the verbs, on the same `Registry` as
gRPC), and the pure translations: `convert` (protobuf <-> Kubernetes JSON), `tables`
(server-side Tables), `fields` (field selectors), `options` (query parameters, watch
events), `errors` (Status objects). Writes: `patch` (PATCH of every type),
`subresources_status` (`/status`), `field_validation` (fieldValidation, dryRun),
`field_managers` (managedFields), over the pure modules of `services.apiserver.k8s`;
`openapi_routes` serves that package's OpenAPI v3 documents. `delete_collection`
(DELETE on a collection) and `delete_options` (DeleteOptions from a body or a query);
`protobuf_body` reads kubectl's protobuf bodies as JSON. `endpoints` serves the
read-only core/v1 Endpoints, derived from EndpointSlices (`endpoints_wire`: its paths,
Tables and pages).
"""
