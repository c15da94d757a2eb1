"""grpcurl-style discovery: server reflection describes the API, health answers SERVING."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from kubelab.testing.processes import ApiServerProcess

pytestmark = pytest.mark.integration


def test_reflection_lists_and_describes_the_api(apiserver: ApiServerProcess) -> None:
    with grpc.insecure_channel(apiserver.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"kubelab.v1.Api", "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(database)
        api = pool.FindServiceByName("kubelab.v1.Api")
        methods = {m.name for m in api.methods}
        assert {"Create", "Apply", "ApplyStream", "Get", "List", "Delete", "Watch"} <= methods
        service = pool.FindMessageTypeByName("kubelab.v1.ServiceSpec")
        assert service.fields_by_name["cluster_ip"].json_name == "clusterIP"

        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="kubelab.v1.Api"), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
