"""The big headless Service's slices that bench/dns.py and bench/soak.py churn."""

from __future__ import annotations

from google.protobuf import json_format

from kubelab.v1 import objects_pb2

ENDPOINTS_PER_SLICE = 100


def big_slice(service: str, index: int, not_ready: int | None = None) -> objects_pb2.EndpointSlice:
    """Slice `index` of the headless Service `service`: 100 endpoints
    10.<index/256>.<index%256>.<n>, all ready but `not_ready`."""
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{index}",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [f"10.{index // 256}.{index % 256}.{n}"],
                "conditions": {"ready": n != not_ready},
            }
            for n in range(ENDPOINTS_PER_SLICE)
        ],
        "ports": [{"name": "pg", "protocol": "TCP", "port": 5432}],
    }
    return json_format.ParseDict(body, objects_pb2.EndpointSlice())
