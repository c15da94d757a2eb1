"""grpcurl-style discovery: server reflection describes the API, health answers SERVING."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from kubelab.testing.cloud import CloudStubProcess
from kubelab.testing.processes import ApiServerProcess, EtcdServer

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


def test_reflection_describes_the_cloud_provider(etcd: EtcdServer, tmp_path: Path) -> None:
    """What `grpcurl -plaintext <cloud-stub> list/describe kubelab.v1.CloudProvider` reads."""
    cloud = CloudStubProcess(etcd.endpoint, tmp_path, "127.203.0.0/24")
    cloud.start()
    try:
        with grpc.insecure_channel(cloud.address) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            assert "kubelab.v1.CloudProvider" in set(database.get_services())
            pool = DescriptorPool(database)
            provider = pool.FindServiceByName("kubelab.v1.CloudProvider")
            assert {m.name for m in provider.methods} == {
                "EnsureLoadBalancer",
                "GetLoadBalancer",
                "DeleteLoadBalancer",
                "ListLoadBalancers",
            }
            spec = pool.FindMessageTypeByName("kubelab.v1.LoadBalancerSpec")
            assert "requested_ip" in spec.fields_by_name
    finally:
        cloud.stop()
