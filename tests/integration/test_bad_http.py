"""The bad-input campaign on the Kubernetes HTTP API, authenticated and not: 2,700
generated requests (`kubelab.testing.bad_http`: any method, paths near and far from the
API's, odd parameters, content types and headers, damaged manifests and random bytes),
each sent by three callers to a real apiserver started with TLS and RBAC: the admin, a
user RBAC grants nothing, and a client without a certificate (8,100 requests; the gRPC
campaign is tests/integration/test_bad_input.py).

Whatever arrives: never a 5xx, an error is a Kubernetes Status with its code, the
apiserver logs no traceback, the callers without rights wrote nothing (etcd's revision
did not move), and the cluster serves afterwards.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from kubelab.core import certs
from kubelab.pki import Pair, Pki, ensure_pki
from kubelab.testing import badinput
from kubelab.testing.bad_http import Request, requests
from kubelab.testing.processes import ApiServerProcess, EtcdServer

pytestmark = pytest.mark.integration

REQUESTS = 2700
IN_FLIGHT = 16
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"), nodes=[], api_sans=["127.0.0.1"], now=NOW)


@pytest.fixture
def secure(etcd: EtcdServer, tmp_path: Path, pki: Pki) -> Iterator[ApiServerProcess]:
    process = ApiServerProcess(etcd.endpoint, tmp_path, pki=pki)
    process.start()
    yield process
    process.stop()


def _context(pki: Pki, pair: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return context


def _nobody(pki: Pki, directory: Path) -> Pair:
    ca = certs.CertKey(
        certs.load_cert(pki.ca.cert.read_bytes()), certs.load_key(pki.ca.key.read_bytes())
    )
    made = certs.sign_client(ca, "nobody", now=NOW)
    pair = Pair(directory / "nobody.crt", directory / "nobody.key")
    pair.cert.write_bytes(certs.cert_pem(made.cert))
    pair.key.write_bytes(certs.key_pem(made.key))
    return pair


async def _campaign(
    url: str, context: ssl.SSLContext, sent: list[Request]
) -> list[tuple[Request, int]]:
    answered: list[tuple[Request, int]] = []
    faults: list[str] = []
    pending = iter(sent)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, ssl=context)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, skip_auto_headers=("Content-Type",)
    ) as session:

        async def worker() -> None:
            for request in pending:
                async with session.request(
                    request.method,
                    url + request.path,
                    params=list(request.query),
                    headers=list(request.headers),
                    data=request.body,
                ) as answer:
                    body = await answer.read()
                answered.append((request, answer.status))
                if answer.status >= 500:
                    faults.append(f"{request}: {answer.status} {body[:300]!r}")
                elif answer.status >= 400 and request.method != "HEAD":
                    status = json.loads(body)
                    if status.get("kind") != "Status" or status.get("code") != answer.status:
                        faults.append(f"{request}: not a Status: {body[:300]!r}")

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    assert not faults, "\n".join(faults[:10])
    return answered


def _public(who: str, method: str, path: str) -> bool:
    """What Kubernetes' default RBAC lets `who` do: everyone read /version and /healthz
    (system:public-info-viewer); an authenticated user also discovery and the OpenAPI
    documents (system:discovery) and the self-reviews (system:basic-user)."""
    # As the client sent it: aiohttp removes dot segments (`/v1/namespaces/..` is `/v1`).
    parts = [p for p in URL(f"https://host{path}").path.split("/") if p]
    if method in ("GET", "HEAD") and parts in (["version"], ["healthz"]):
        return True
    if who == "anonymous":
        return False
    discovery = (
        (parts[:1] == ["api"] and len(parts) <= 2)
        or (parts[:1] == ["apis"] and len(parts) <= 3)
        or parts[:1] == ["openapi"]
    )
    return (method in ("GET", "HEAD") and discovery) or (method == "POST" and "selfsubject" in path)


async def _revision(url: str, context: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(f"{url}/api/v1/namespaces", ssl=context) as answer:
            assert answer.status == 200
            return int((await answer.json())["metadata"]["resourceVersion"])


async def test_bad_http_requests_never_meet_a_server_fault(
    secure: ApiServerProcess, pki: Pki, tmp_path: Path
) -> None:
    sent = badinput.examples(requests(), REQUESTS, key=Request.key)
    admin = _context(pki, pki.admin)
    before = await _revision(secure.http_url, admin)
    seen: dict[str, list[tuple[Request, int]]] = {}
    for who, pair in (("anonymous", None), ("nobody", _nobody(pki, tmp_path))):
        seen[who] = await _campaign(secure.http_url, _context(pki, pair), sent)
        assert await _revision(secure.http_url, admin) == before, f"{who} wrote something"
        # What RBAC's defaults give them is reading the version, discovery and the
        # self-reviews: no other request succeeded.
        succeeded = [r for r, code in seen[who] if code < 300]
        unexpected = [r for r in succeeded if not _public(who, r.method, r.path)]
        assert not unexpected, (who, unexpected[:5])
        assert Counter(code for _, code in seen[who])[403] > 0
    seen["admin"] = await _campaign(secure.http_url, admin, sent)
    assert len(seen["admin"]) == REQUESTS
    log = secure.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
    # Still serving.
    assert await _revision(secure.http_url, admin) >= before
