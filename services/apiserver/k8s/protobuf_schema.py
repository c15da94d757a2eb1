"""The k8s.io/api protobuf messages `k8s_protobuf` decodes: field numbers -> JSON names.

`SCHEMA` holds, per message, the fields as `generated.proto` numbers them (k8s.io/api
core/v1, apps/v1 and rbac/v1, apimachinery meta/v1, Kubernetes 1.37) with their JSON names and
how to read them: a scalar type, a message of this table, `OPAQUE` (a field kubelab
does not model: named, not decoded) or `DROP` (status, managedFields: not read).
`presence` marks Go pointer fields (on the wire only when set, so a zero is kept);
`inline` an embedded struct whose fields are its parent's in JSON (Probe's handler).
`KINDS` names the top-level messages a body may carry.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# The value of a field that is on the wire but not decoded (see the module doc).
NOT_DECODED = "<protobuf: not decoded by kubelab>"

STRING, INT, BOOL, TIME, INT_OR_STRING, STRING_MAP = (
    "string",
    "int",
    "bool",
    "time",
    "int-or-string",
    "string-map",
)
OPAQUE, DROP = "opaque", "drop"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # a scalar type above, OPAQUE, DROP, or a message name in SCHEMA
    repeated: bool = False
    presence: bool = False  # a Go pointer: on the wire only when set, zero included
    inline: bool = False  # embedded in its parent's JSON (Probe's ProbeHandler)


def _f(name: str, type_: str = STRING, **flags: bool) -> Field:
    return Field(name, type_, **flags)


def _many(name: str, type_: str = STRING) -> Field:
    return Field(name, type_, repeated=True)


def _opaque(*numbered: tuple[int, str]) -> dict[int, Field]:
    return {n: Field(name, OPAQUE) for n, name in numbered}


SCHEMA: dict[str, dict[int, Field]] = {
    "ObjectMeta": {
        1: _f("name"),
        2: _f("generateName"),
        3: _f("namespace"),
        4: _f("selfLink"),
        5: _f("uid"),
        6: _f("resourceVersion"),
        7: _f("generation", INT),
        8: _f("creationTimestamp", TIME),
        9: _f("deletionTimestamp", TIME),
        10: _f("deletionGracePeriodSeconds", INT, presence=True),
        11: _f("labels", STRING_MAP),
        12: _f("annotations", STRING_MAP),
        13: _many("ownerReferences", "OwnerReference"),
        14: _many("finalizers"),
        17: _f("managedFields", DROP),  # the server's to write
    },
    "OwnerReference": {
        1: _f("kind"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("controller", BOOL, presence=True),
        7: _f("blockOwnerDeletion", BOOL, presence=True),
    },
    "LabelSelector": {
        1: _f("matchLabels", STRING_MAP),
        2: _many("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _many("values")},
    "Namespace": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "NamespaceSpec"),
        3: _f("status", DROP),
    },
    "NamespaceSpec": {1: _many("finalizers")},
    "Service": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "ServiceSpec"),
        3: _f("status", DROP),
    },
    "ServiceSpec": {
        1: _many("ports", "ServicePort"),
        2: _f("selector", STRING_MAP),
        3: _f("clusterIP"),
        4: _f("type"),
        5: _many("externalIPs"),
        7: _f("sessionAffinity"),
        8: _f("loadBalancerIP"),
        9: _many("loadBalancerSourceRanges"),
        10: _f("externalName"),
        11: _f("externalTrafficPolicy"),
        12: _f("healthCheckNodePort", INT),
        13: _f("publishNotReadyAddresses", BOOL),
        14: _f("sessionAffinityConfig", "SessionAffinityConfig"),
        17: _f("ipFamilyPolicy"),
        18: _many("clusterIPs"),
        19: _many("ipFamilies"),
        20: _f("allocateLoadBalancerNodePorts", BOOL, presence=True),
        21: _f("loadBalancerClass"),
        22: _f("internalTrafficPolicy"),
        23: _f("trafficDistribution"),
    },
    "ServicePort": {
        1: _f("name"),
        2: _f("protocol"),
        3: _f("port", INT),
        4: _f("targetPort", INT_OR_STRING),
        5: _f("nodePort", INT),
        6: _f("appProtocol"),
    },
    "SessionAffinityConfig": {1: _f("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: _f("timeoutSeconds", INT, presence=True)},
    "Deployment": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "DeploymentSpec"),
        3: _f("status", DROP),
    },
    "DeploymentSpec": {
        1: _f("replicas", INT, presence=True),
        2: _f("selector", "LabelSelector"),
        3: _f("template", "PodTemplateSpec"),
        4: _f("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", INT),
        6: _f("revisionHistoryLimit", INT, presence=True),
        7: _f("paused", BOOL),
        9: _f("progressDeadlineSeconds", INT, presence=True),
    },
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {
        1: _f("maxUnavailable", INT_OR_STRING, presence=True),
        2: _f("maxSurge", INT_OR_STRING, presence=True),
    },
    "PodTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "Pod": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec"), 3: _f("status", DROP)},
    "PodSpec": {
        2: _many("containers", "Container"),
        3: _f("restartPolicy"),
        4: _f("terminationGracePeriodSeconds", INT, presence=True),
        5: _f("activeDeadlineSeconds", INT, presence=True),
        6: _f("dnsPolicy"),
        7: _f("nodeSelector", STRING_MAP),
        8: _f("serviceAccountName"),
        9: _f("serviceAccount"),
        10: _f("nodeName"),
        11: _f("hostNetwork", BOOL),
        12: _f("hostPID", BOOL),
        13: _f("hostIPC", BOOL),
        16: _f("hostname"),
        17: _f("subdomain"),
        19: _f("schedulerName"),
        20: _many("initContainers", "Container"),
        21: _f("automountServiceAccountToken", BOOL, presence=True),
        24: _f("priorityClassName"),
        25: _f("priority", INT, presence=True),
        27: _f("shareProcessNamespace", BOOL, presence=True),
        29: _f("runtimeClassName"),
        30: _f("enableServiceLinks", BOOL, presence=True),
        31: _f("preemptionPolicy"),
        35: _f("setHostnameAsFQDN", BOOL, presence=True),
        37: _f("hostUsers", BOOL, presence=True),
        41: _f("hostnameOverride"),
        **_opaque(
            (1, "volumes"),
            (14, "securityContext"),
            (15, "imagePullSecrets"),
            (18, "affinity"),
            (22, "tolerations"),
            (23, "hostAliases"),
            (26, "dnsConfig"),
            (28, "readinessGates"),
            (32, "overhead"),
            (33, "topologySpreadConstraints"),
            (34, "ephemeralContainers"),
            (36, "os"),
            (38, "schedulingGates"),
            (39, "resourceClaims"),
            (40, "resources"),
            (43, "schedulingGroup"),
            (44, "evictionResponders"),
        ),
    },
    "Container": {
        1: _f("name"),
        2: _f("image"),
        3: _many("command"),
        4: _many("args"),
        5: _f("workingDir"),
        6: _many("ports", "ContainerPort"),
        7: _many("env", "EnvVar"),
        10: _f("livenessProbe", "Probe"),
        11: _f("readinessProbe", "Probe"),
        13: _f("terminationMessagePath"),
        14: _f("imagePullPolicy"),
        16: _f("stdin", BOOL),
        17: _f("stdinOnce", BOOL),
        18: _f("tty", BOOL),
        20: _f("terminationMessagePolicy"),
        22: _f("startupProbe", "Probe"),
        24: _f("restartPolicy"),
        **_opaque(
            (8, "resources"),
            (9, "volumeMounts"),
            (12, "lifecycle"),
            (15, "securityContext"),
            (19, "envFrom"),
            (21, "volumeDevices"),
            (23, "resizePolicy"),
            (25, "restartPolicyRules"),
        ),
    },
    "ContainerPort": {
        1: _f("name"),
        2: _f("hostPort", INT),
        3: _f("containerPort", INT),
        4: _f("protocol"),
        5: _f("hostIP"),
    },
    "EnvVar": {1: _f("name"), 2: _f("value"), **_opaque((3, "valueFrom"))},
    "Probe": {
        1: _f("handler", "ProbeHandler", inline=True),
        2: _f("initialDelaySeconds", INT),
        3: _f("timeoutSeconds", INT),
        4: _f("periodSeconds", INT),
        5: _f("successThreshold", INT),
        6: _f("failureThreshold", INT),
        7: _f("terminationGracePeriodSeconds", INT, presence=True),
    },
    "ProbeHandler": {
        1: _f("exec", "ExecAction"),
        2: _f("httpGet", "HTTPGetAction"),
        3: _f("tcpSocket", "TCPSocketAction"),
        **_opaque((4, "grpc")),
    },
    "ExecAction": {1: _many("command")},
    "HTTPGetAction": {
        1: _f("path"),
        2: _f("port", INT_OR_STRING),
        3: _f("host"),
        4: _f("scheme"),
        5: _many("httpHeaders", "HTTPHeader"),
        6: _f("protocol"),
    },
    "HTTPHeader": {1: _f("name"), 2: _f("value")},
    "TCPSocketAction": {1: _f("port", INT_OR_STRING), 2: _f("host")},
    # The self-reviews kubectl posts (`kubectl auth can-i`, `kubectl auth whoami`).
    "SelfSubjectAccessReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SelfSubjectAccessReviewSpec"),
        3: _f("status", DROP),  # the server's to write
    },
    "SelfSubjectAccessReviewSpec": {
        1: _f("resourceAttributes", "ResourceAttributes", presence=True),
        2: _f("nonResourceAttributes", "NonResourceAttributes", presence=True),
    },
    "ResourceAttributes": {
        1: _f("namespace"),
        2: _f("verb"),
        3: _f("group"),
        4: _f("version"),
        5: _f("resource"),
        6: _f("subresource"),
        7: _f("name"),
        **_opaque((8, "fieldSelector"), (9, "labelSelector")),
    },
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SelfSubjectReview": {1: _f("metadata", "ObjectMeta"), 2: _f("status", DROP)},
    # `kubectl create token` (authentication.k8s.io/v1 TokenRequest).
    "TokenRequest": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "TokenRequestSpec"),
        3: _f("status", DROP),
    },
    "TokenRequestSpec": {
        1: _many("audiences"),
        3: _f("boundObjectRef", "BoundObjectReference", presence=True),
        4: _f("expirationSeconds", INT, presence=True),
    },
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
}

# core/v1 ServiceAccount and rbac.authorization.k8s.io/v1 (`kubectl create serviceaccount`,
# `kubectl create role|clusterrole|rolebinding|clusterrolebinding` send these).
SCHEMA |= {
    "ServiceAccount": {
        1: _f("metadata", "ObjectMeta"),
        2: _many("secrets", "ObjectReference"),
        4: _f("automountServiceAccountToken", BOOL, presence=True),
        **_opaque((3, "imagePullSecrets")),
    },
    "ObjectReference": {
        1: _f("kind"),
        2: _f("namespace"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("resourceVersion"),
        7: _f("fieldPath"),
    },
    "PolicyRule": {
        1: _many("verbs"),
        2: _many("apiGroups"),
        3: _many("resources"),
        4: _many("resourceNames"),
        5: _many("nonResourceURLs"),
    },
    "AggregationRule": {1: _many("clusterRoleSelectors", "LabelSelector")},
    "Role": {1: _f("metadata", "ObjectMeta"), 2: _many("rules", "PolicyRule")},
    "ClusterRole": {
        1: _f("metadata", "ObjectMeta"),
        2: _many("rules", "PolicyRule"),
        3: _f("aggregationRule", "AggregationRule"),
    },
    "Subject": {1: _f("kind"), 2: _f("apiGroup"), 3: _f("name"), 4: _f("namespace")},
    "RoleRef": {1: _f("apiGroup"), 2: _f("kind"), 3: _f("name")},
    "RoleBinding": {
        1: _f("metadata", "ObjectMeta"),
        2: _many("subjects", "Subject"),
        3: _f("roleRef", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: _f("metadata", "ObjectMeta"),
        2: _many("subjects", "Subject"),
        3: _f("roleRef", "RoleRef"),
    },
}
_RBAC_V1 = "rbac.authorization.k8s.io/v1"

# The kinds a protobuf body may carry: (apiVersion, kind) -> the message's name.
KINDS = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Service"): "Service",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("v1", "ServiceAccount"): "ServiceAccount",
    **{
        (_RBAC_V1, kind): kind
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}
