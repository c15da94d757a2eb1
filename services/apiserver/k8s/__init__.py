"""Pure logic of the Kubernetes HTTP API's write paths: patches, apply, schema.

Every module here works on plain JSON values (`jsonvalue.Json`: dict, list,
str, int, float, bool, None — a Kubernetes object as `json.loads` gives it) and
does no I/O: the HTTP front (`services.apiserver.rest`) reads the request,
calls these functions, and stores the result through the registry.

- `schema`: the shape of kubelab's kinds as Kubernetes declares it (merge keys,
  list types, patch strategies), built from kubelab's protobuf descriptors.
- `patches`: PATCH by Content-Type, over `merge_patch`, `json_patch` and
  `strategic_merge` (the three non-apply bodies).
- `managed_fields`: server-side apply and Update entries, over `fieldsets`
  (FieldsV1 paths, Compare, ToFieldSet), `ssa_merge` (the structural merge)
  and `last_applied` (kubectl's client-side to server-side migration).
- `openapi`: `/openapi/v3` documents and the unknown-field check behind
  `fieldValidation`.

An import-linter contract keeps this package free of gRPC, asyncio and the store.
"""
