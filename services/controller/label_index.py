"""Who selects whom, without scanning: indexes from label pairs to Services and pods.

A pod change must reach exactly the Services whose selector matches the pod
(before or after the change), and a Service's reconcile needs exactly the
pods its selector matches. With 1,000 Services of 10 pods, scanning every
Service per pod event (100 a second) or every pod per reconcile costs more
than the reconcile itself. Both indexes key on `(namespace, label key,
value)`: a selector matches only pods carrying *all* its pairs, so any one
pair narrows the candidates, and the exact match is checked on those few.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from kubelab.core.keys import ObjectKey

Pair = tuple[str, str, str]


class SelectorIndex:
    """Services by the label pairs of their selectors (Services without one are left out:
    their endpoints are the user's)."""

    def __init__(self) -> None:
        self._by_pair: dict[Pair, set[ObjectKey]] = defaultdict(set)
        self._selectors: dict[ObjectKey, dict[str, str]] = {}

    def put(self, service: ObjectKey, selector: Mapping[str, str] | None) -> None:
        self.remove(service)
        if not selector:
            return
        self._selectors[service] = dict(selector)
        for key, value in selector.items():
            self._by_pair[(service[0], key, value)].add(service)

    def remove(self, service: ObjectKey) -> None:
        old = self._selectors.pop(service, None)
        if old is None:
            return
        for key, value in old.items():
            pair = (service[0], key, value)
            self._by_pair[pair].discard(service)
            if not self._by_pair[pair]:
                del self._by_pair[pair]

    def selecting(self, namespace: str, labels: Mapping[str, str]) -> set[ObjectKey]:
        """Services in `namespace` whose selector matches `labels`."""
        found: set[ObjectKey] = set()
        for key, value in labels.items():
            for service in self._by_pair.get((namespace, key, value), ()):
                selector = self._selectors[service]
                if all(labels.get(k) == v for k, v in selector.items()):
                    found.add(service)
        return found


class PodLabelIndex:
    """Pods by each of their label pairs."""

    def __init__(self) -> None:
        self._by_pair: dict[Pair, set[ObjectKey]] = defaultdict(set)
        self._labels: dict[ObjectKey, dict[str, str]] = {}

    def put(self, pod: ObjectKey, labels: Mapping[str, str] | None) -> None:
        self.remove(pod)
        if labels is None:
            return
        self._labels[pod] = dict(labels)
        for key, value in labels.items():
            self._by_pair[(pod[0], key, value)].add(pod)

    def remove(self, pod: ObjectKey) -> None:
        old = self._labels.pop(pod, None)
        if old is None:
            return
        for key, value in old.items():
            pair = (pod[0], key, value)
            self._by_pair[pair].discard(pod)
            if not self._by_pair[pair]:
                del self._by_pair[pair]

    def matching(self, namespace: str, selector: Mapping[str, str]) -> Iterable[ObjectKey]:
        """Pods in `namespace` carrying every pair of `selector` (non-empty)."""
        pairs = [(namespace, k, v) for k, v in selector.items()]
        if not pairs:
            return ()
        smallest = min((self._by_pair.get(p, set()) for p in pairs), key=len)
        return [pod for pod in smallest if all(self._labels[pod].get(k) == v for _, k, v in pairs)]
