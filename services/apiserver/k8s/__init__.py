"""Pure logic of the Kubernetes HTTP API's write paths: patches, apply, schema.

Every module here works on plain JSON values (`jsonvalue.Json`: dict, list,
str, int, float, bool, None — a Kubernetes object as `json.loads` gives it) and
does no I/O: the HTTP front (`services.apiserver.rest`) reads the request,
calls these functions, and stores the result through the registry. Inputs are
never changed; every error is a `PatchError` (or `ApplyConflict`) carrying the
HTTP status Kubernetes answers with (`status_code`) and a message naming the path.

- `schema`: the shape of kubelab's kinds as Kubernetes declares it (merge keys,
  list types, patch strategies), built from kubelab's protobuf descriptors
  plus `schema_tables`.
- `patches`: PATCH by Content-Type, over `merge_patch`, `json_patch` and
  `strategic_merge` (the three non-apply bodies).
- `managed_fields`: server-side apply and Update entries, over `fieldsets`
  (FieldsV1 paths, Compare, ToFieldSet), `ssa_merge` (the structural merge)
  and `last_applied` (kubectl's client-side to server-side migration).
- `openapi`: `/openapi/v3` documents and the unknown-field check behind
  `fieldValidation`.
- `k8s_protobuf` over `protowire` and `protobuf_schema`: a Kubernetes protobuf
  body (what kubectl's `create namespace|deployment|service` send) as the JSON
  object it encodes; its errors are `ProtobufError`s naming the path.
- `endpoints_mirror`, `endpoints_watch`: the one read path here: core/v1 Endpoints,
  which nothing stores, derived from EndpointSlices for get, list and watch.

How a write flows through them (the HTTP front's side):

    PATCH, not apply:  new = patches.apply_patch(live, body, content_type, kind)
                       then validate/default new as for a PUT, then
                       new = managed_fields.update(live, new, manager=..., kind=...,
                                                   api_version=..., now=...)
    PATCH, apply:      new = managed_fields.apply(live_or_None, body, manager=...,
                                                  kind=..., api_version=..., now=...,
                                                  force=...)
    POST / PUT:        new = managed_fields.update(live_or_None, body, ...)
    fieldValidation:   openapi.unknown_fields(body, kind) before any of these.

An import-linter contract keeps this package free of gRPC, asyncio and the store.
"""
