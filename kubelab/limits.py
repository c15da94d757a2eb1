"""Message sizes, chosen once for every gRPC server, channel and the etcd client.

gRPC's defaults (4 MiB received, unlimited sent) made message size a function of
cluster size: a list of 17 Services with 250 kB annotations no longer fitted.
Now no message grows with the cluster. Every message kubelab builds is bounded:

* an object is at most `MAX_OBJECT_BYTES` (1 MiB encoded; validation refuses a
  larger one), under etcd's `--max-request-bytes` (1.5 MiB by default, which
  kubelab keeps);
* a list page, an apply chunk and its answer stop adding objects once they hold
  `PAGE_BYTES`, so each is at most `PAGE_BYTES + MAX_OBJECT_BYTES`;
* a watch event carries one object.

(One answer is not paged yet: NodeAgent.ListPods, one node's pods.)

`MESSAGE_BYTES_MAX` is the limit every gRPC peer sets for both directions:
several times the largest message above, so a bound is never hit by a message
kubelab built, yet small enough that a hostile or broken peer cannot make an
actor buffer an arbitrary amount of memory for one message.
"""

from __future__ import annotations

from typing import Final

PAGE_BYTES: Final = 4 * 1024 * 1024
MESSAGE_BYTES_MAX: Final = 32 * 1024 * 1024
# What kubectl asks per list page (`--chunk-size`), and so do the SDK and the informers.
LIST_CHUNK: Final = 500

GRPC_OPTIONS: Final = (
    ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
    ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
)

# The etcd client: the store reads ranges in pages of about PAGE_BYTES (steps that would
# answer more than this are retried smaller) and transaction read-backs carry no values;
# requests are bounded by etcd's --max-request-bytes.
ETCD_MESSAGE_BYTES_MAX: Final = MESSAGE_BYTES_MAX
