from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadBalancerKey(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class LoadBalancerPort(_message.Message):
    __slots__ = ("name", "protocol", "port", "node_port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    NODE_PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    protocol: str
    port: int
    node_port: int
    def __init__(self, name: _Optional[str] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ..., node_port: _Optional[int] = ...) -> None: ...

class LoadBalancerNode(_message.Message):
    __slots__ = ("name", "address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class LoadBalancerSpec(_message.Message):
    __slots__ = ("namespace", "name", "uid", "requested_ip", "ports", "nodes", "health_check_node_port", "source_ranges", "node_health_port")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_IP_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_NODE_PORT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_RANGES_FIELD_NUMBER: _ClassVar[int]
    NODE_HEALTH_PORT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    uid: str
    requested_ip: str
    ports: _containers.RepeatedCompositeFieldContainer[LoadBalancerPort]
    nodes: _containers.RepeatedCompositeFieldContainer[LoadBalancerNode]
    health_check_node_port: int
    source_ranges: _containers.RepeatedScalarFieldContainer[str]
    node_health_port: int
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[str] = ..., requested_ip: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[LoadBalancerPort, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[LoadBalancerNode, _Mapping]]] = ..., health_check_node_port: _Optional[int] = ..., source_ranges: _Optional[_Iterable[str]] = ..., node_health_port: _Optional[int] = ...) -> None: ...

class NodeHealth(_message.Message):
    __slots__ = ("name", "address", "healthy", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    healthy: bool
    last_error: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., healthy: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class LoadBalancer(_message.Message):
    __slots__ = ("spec", "ip", "nodes")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    spec: LoadBalancerSpec
    ip: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeHealth]
    def __init__(self, spec: _Optional[_Union[LoadBalancerSpec, _Mapping]] = ..., ip: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeHealth, _Mapping]]] = ...) -> None: ...

class DeleteLoadBalancerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadBalancersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLoadBalancersResponse(_message.Message):
    __slots__ = ("load_balancers",)
    LOAD_BALANCERS_FIELD_NUMBER: _ClassVar[int]
    load_balancers: _containers.RepeatedCompositeFieldContainer[LoadBalancer]
    def __init__(self, load_balancers: _Optional[_Iterable[_Union[LoadBalancer, _Mapping]]] = ...) -> None: ...
