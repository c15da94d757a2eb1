"""What `kubectl explain` prints for kubelab's kinds: short paraphrases of
Kubernetes' API reference, keyed `<Definition>` and `<Definition>.<jsonName>`.
A field without an entry is explained as `<no description>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPE_DESCRIPTIONS = {
    "Service": "Service is a named abstraction of software service (for example, mysql) "
    "consisting of local port (for example 3306) that the proxy listens on, and the "
    "selector that determines which pods will answer requests sent through the proxy.",
    "ServiceSpec": "ServiceSpec describes the attributes that a user creates on a service.",
    "ServicePort": "ServicePort contains information on service's port.",
    "ServiceStatus": "ServiceStatus represents the current status of a service.",
    "Pod": "Pod is a collection of containers that can run on a host. This resource is "
    "created by clients and scheduled onto hosts.",
    "PodSpec": "PodSpec is a description of a pod.",
    "Container": "A single application container that you want to run within a pod.",
    "ContainerPort": "ContainerPort represents a network port in a single container.",
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "DeploymentSpec": "DeploymentSpec is the specification of the desired behavior of the "
    "Deployment.",
    "EndpointSlice": "EndpointSlice represents a set of service endpoints. Most EndpointSlices "
    "are created by the EndpointSlice controller to represent the Pods selected by Service "
    "objects.",
    "Node": "Node is a worker node in Kubernetes; kubelab's node agent runs one.",
    "Namespace": "Namespace provides a scope for Names.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "Endpoints": "Endpoints is a collection of endpoints that implement the actual service. "
    "Deprecated in v1.33+: use discovery/v1 EndpointSlice. In kubelab, read-only: derived "
    "from the Service's EndpointSlices.",
    "EndpointSubset": "EndpointSubset is a group of addresses with a common set of ports.",
    "EndpointAddress": "EndpointAddress is a tuple that describes single IP address.",
    "ObjectMeta": "ObjectMeta is metadata that all persisted resources must have, which "
    "includes all objects users must create.",
    "DeploymentStrategy": "DeploymentStrategy describes how to replace existing pods with new "
    "ones.",
    "RollingUpdateDeployment": "Spec to control the desired behavior of rolling update.",
    "Probe": "Probe describes a health check to be performed against a container to determine "
    "whether it is alive or ready to receive traffic.",
    "EnvVar": "EnvVar represents an environment variable present in a Container.",
    "Endpoint": "Endpoint represents a single logical backend implementing a service.",
    "EndpointPort": "EndpointPort represents a Port used by an EndpointSlice.",
    "EndpointConditions": "EndpointConditions represents the current condition of an endpoint.",
    "PodTemplateSpec": "PodTemplateSpec describes the data a pod should have when created from "
    "a template.",
    "LabelSelector": "A label selector is a label query over a set of resources; matchLabels "
    "and matchExpressions are ANDed.",
}


def field_descriptions(type_meta: Mapping[str, Any]) -> dict[str, str]:
    """FIELD_DESCRIPTIONS plus apiVersion/kind for the kinds that have messages."""
    kinds = (
        "Service",
        "Pod",
        "Deployment",
        "EndpointSlice",
        "Node",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
    )
    out = {f"{k}.{name}": decl.description for k in kinds for name, decl in type_meta.items()}
    return out | FIELD_DESCRIPTIONS


FIELD_DESCRIPTIONS = {
    **{f"{kind}.metadata": "Standard object's metadata." for kind in ("Service", "Pod", "Node")},
    "Deployment.metadata": "Standard object's metadata.",
    "EndpointSlice.metadata": "Standard object's metadata.",
    "Service.spec": "Spec defines the behavior of a service.",
    "Service.status": "Most recently observed status of the service.",
    "Pod.spec": "Specification of the desired behavior of the pod.",
    "Pod.status": "Most recently observed status of the pod.",
    "Deployment.spec": "Specification of the desired behavior of the Deployment.",
    "Deployment.status": "Most recently observed status of the Deployment.",
    "Node.spec": "Spec defines the behavior of a node.",
    "Node.status": "Most recently observed status of the node.",
    "EndpointSlice.addressType": "The type of address carried by this EndpointSlice: IPv4, "
    "IPv6 or FQDN.",
    "EndpointSlice.endpoints": "A list of unique endpoints in this slice.",
    "EndpointSlice.ports": "The network ports exposed by each endpoint in this slice.",
    "ServiceSpec.ports": "The list of ports that are exposed by this service.",
    "ServiceSpec.selector": "Route service traffic to pods with label keys and values matching "
    "this selector.",
    "ServiceSpec.clusterIP": 'The IP address of the service, usually assigned randomly; "None" '
    "makes a headless service.",
    "ServiceSpec.clusterIPs": "A list of IP addresses assigned to this service.",
    "ServiceSpec.type": "How the Service is exposed: ClusterIP, NodePort, LoadBalancer or "
    "ExternalName. Defaults to ClusterIP.",
    "ServiceSpec.sessionAffinity": "ClientIP or None: whether a client's connections stick to "
    "one pod.",
    "ServiceSpec.externalTrafficPolicy": "Cluster or Local: how external traffic is routed to "
    "the service's endpoints.",
    "ServiceSpec.internalTrafficPolicy": "Cluster or Local: how cluster-internal traffic is "
    "routed to the service's endpoints.",
    "ServiceSpec.externalName": "The DNS name this service aliases (type ExternalName).",
    "ServicePort.name": "The name of this port within the service. Must be a DNS_LABEL; "
    "required when the service has more than one port.",
    "ServicePort.protocol": 'The IP protocol for this port: "TCP" or "UDP". Default is TCP.',
    "ServicePort.port": "The port that will be exposed by this service.",
    "ServicePort.targetPort": "Number or name of the port to access on the pods targeted by the "
    "service. Defaults to the value of 'port'.",
    "ServicePort.nodePort": "The port on each node on which this service is exposed when type "
    "is NodePort or LoadBalancer; allocated by the system when not given.",
    "ServicePort.appProtocol": "The application protocol for this port, a hint for "
    "implementations.",
    "ObjectMeta.name": "Name must be unique within a namespace.",
    "ObjectMeta.namespace": "Namespace defines the space within which each name must be unique.",
    "ObjectMeta.labels": "Map of string keys and values that can be used to organize and "
    "categorize (scope and select) objects.",
    "ObjectMeta.annotations": "Unstructured key value map stored with a resource that may be "
    "set by external tools to store and retrieve arbitrary metadata.",
    "ObjectMeta.resourceVersion": "An opaque value that represents the internal version of "
    "this object.",
    "ObjectMeta.uid": "UID is the unique in time and space value for this object.",
    "PodSpec.containers": "List of containers belonging to the pod.",
    "PodSpec.nodeName": "The node the pod is scheduled onto.",
    "Container.name": "Name of the container specified as a DNS_LABEL.",
    "Container.image": "Container image name.",
    "Container.ports": "List of ports to expose from the container.",
    "Container.env": "List of environment variables to set in the container.",
    "DeploymentSpec.replicas": "Number of desired pods. Defaults to 1.",
    "DeploymentSpec.selector": "Label selector for pods; must match the template's labels.",
    "DeploymentSpec.template": "Template describes the pods that will be created.",
    "DeploymentSpec.strategy": "The deployment strategy to use to replace existing pods with "
    "new ones.",
    "DeploymentStrategy.type": 'Type of deployment: "Recreate" or "RollingUpdate" (the default).',
    "DeploymentStrategy.rollingUpdate": "Rolling update config params; present only if type "
    "is RollingUpdate.",
    "RollingUpdateDeployment.maxSurge": "The maximum number of pods that can be scheduled "
    "above the desired number of pods: a number or a percentage (default 25%).",
    "RollingUpdateDeployment.maxUnavailable": "The maximum number of pods that can be "
    "unavailable during the update: a number or a percentage (default 25%).",
    "PodSpec.nodeSelector": "A selector which must match a node's labels for the pod to be "
    "scheduled on that node.",
    "PodSpec.restartPolicy": "Restart policy for all containers within the pod: Always, "
    "OnFailure or Never. Default to Always.",
    "PodSpec.terminationGracePeriodSeconds": "Duration in seconds the pod needs to terminate "
    "gracefully.",
    "Container.readinessProbe": "Periodic probe of container service readiness; the pod is "
    "removed from service endpoints if it fails.",
    "Container.livenessProbe": "Periodic probe of container liveness; the container is "
    "restarted if it fails.",
    "Container.command": "Entrypoint array; the image's ENTRYPOINT is used if not provided.",
    "Container.args": "Arguments to the entrypoint; the image's CMD is used if not provided.",
    "EnvVar.name": "Name of the environment variable.",
    "EnvVar.value": "Value of the environment variable.",
    "ContainerPort.containerPort": "Number of port to expose on the pod's IP address.",
    "ContainerPort.name": "An IANA_SVC_NAME; a service's targetPort may refer to it by name.",
    "ContainerPort.protocol": 'Protocol for port: "UDP" or "TCP". Defaults to "TCP".',
    "Endpoint.addresses": "Addresses of this endpoint: IP addresses of the pod (one in kubelab).",
    "Endpoint.conditions": "The current state of the endpoint.",
    "Endpoint.targetRef": "A reference to a Kubernetes object that represents this endpoint.",
    "Endpoint.nodeName": "The name of the Node hosting this endpoint.",
    "EndpointConditions.ready": "Whether the endpoint is ready to receive traffic; unset is "
    "read as ready.",
    "EndpointConditions.serving": "Like ready, but also true while the endpoint terminates.",
    "EndpointConditions.terminating": "Whether the endpoint is terminating.",
}
