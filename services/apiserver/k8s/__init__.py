"""Pure logic of the Kubernetes HTTP API's write paths: patches, apply, schema.

Every module here works on plain JSON values (`jsonvalue.Json`: dict, list,
str, int, float, bool, None — a Kubernetes object as `json.loads` gives it) and
does no I/O: the HTTP front (`services.apiserver.rest`) reads the request,
calls these functions, and stores the result through the registry.

- `schema`: the shape of kubelab's kinds as Kubernetes declares it (merge keys,
  list types, patch strategies), built from kubelab's protobuf descriptors.
- `merge_patch`, `json_patch`, `strategic_merge`: the three PATCH bodies.
- `fieldsets`, `managed_fields`: server-side apply (FieldsV1 sets, managers,
  conflicts).
- `openapi`: `/openapi/v3` documents and the unknown-field check behind
  `fieldValidation`.

An import-linter contract keeps this package free of gRPC, asyncio and the store.
"""
