"""Cluster DNS: `<svc>.<ns>.svc.cluster.local` and friends, answered from memory.

Watches Services and EndpointSlices in etcd (`sync`), keeps the zone that
Kubernetes' DNS spec defines (`services.dns.logic.dns_records`) as pre-rendered
wire responses (`wire`; what they are rendered with, and the dnspython path
for every other query, in `messages`), and answers UDP and TCP queries from
them (`server`). Authoritative for the cluster domain only: not a forwarder.
"""
