"""ServiceAccount tokens (kubelab.core.sa_tokens): issued as Kubernetes' TokenRequest issues
them, refused for each reason Kubernetes refuses one, in its words."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubelab.core import certs, sa_tokens
from kubelab.core.sa_tokens import TokenProblem

NOW = datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
KEY = certs.new_key()
OTHER_KEY = certs.new_key()
API = list(sa_tokens.DEFAULT_AUDIENCES)
SECOND = datetime.timedelta(seconds=1)


def issue(**changes: Any) -> str:
    fields: dict[str, Any] = {
        "namespace": "default",
        "name": "ci",
        "uid": "3f1c-uid",
        "audiences": [],
        "expiration_seconds": 600,
        "now": NOW,
    }
    fields.update(changes)
    return sa_tokens.issue(KEY, **fields).token


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return decoded


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed(claims: dict[str, Any] | bytes, key: certs.PrivateKey = KEY) -> str:
    """A token over any payload, signed properly: for claims `issue` never writes."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return jwt.PyJWS().encode(payload, key, algorithm="ES256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GOOD = issue()
GOOD_CLAIMS = claims_of(GOOD)


def with_claims(**changes: Any) -> str:
    claims = {**GOOD_CLAIMS, **changes}
    return signed({k: v for k, v in claims.items() if v is not None})


def test_the_token_has_kubernetes_claims_and_header() -> None:
    header = json.loads(unb64(GOOD.split(".")[0]))
    assert header == {"alg": "ES256", "kid": sa_tokens.key_id(KEY.public_key())}
    claims = GOOD_CLAIMS
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == "system:serviceaccount:default:ci"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["iat"] == claims["nbf"] == int(NOW.timestamp())
    assert claims["exp"] == claims["iat"] + 600
    assert claims["kubernetes.io"] == {
        "namespace": "default",
        "serviceaccount": {"name": "ci", "uid": "3f1c-uid"},
    }


def test_verify_names_the_service_account() -> None:
    user = sa_tokens.verify(GOOD, KEY.public_key(), API, NOW)
    assert (user.username, user.uid, user.groups) == (
        "system:serviceaccount:default:ci",
        "3f1c-uid",
        ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"),
    )
    assert user.audiences == tuple(API)
    assert user.extra[sa_tokens.CREDENTIAL_ID] == (f"JTI={GOOD_CLAIMS['jti']}",)


def test_a_pod_bound_token_names_its_pod() -> None:
    pod = sa_tokens.ObjectRef("web-1", "pod-uid")
    user = sa_tokens.verify(issue(pod=pod), KEY.public_key(), API, NOW)
    assert user.extra[sa_tokens.POD_NAME] == ("web-1",)
    assert user.extra[sa_tokens.POD_UID] == ("pod-uid",)


def test_the_expiry_is_the_token_requests_status() -> None:
    issued = sa_tokens.issue(
        KEY, namespace="a", name="b", uid="c", audiences=["x"], expiration_seconds=600, now=NOW
    )
    assert issued.expires_at == NOW + datetime.timedelta(seconds=600)


@pytest.mark.parametrize(
    ("audiences", "accepted"),
    [
        pytest.param(["vault"], ("vault",), id="one-of-one"),
        pytest.param(["api", "vault"], ("vault",), id="intersection"),
    ],
)
def test_the_audience_intersection_is_reported(
    audiences: list[str], accepted: tuple[str, ...]
) -> None:
    token = issue(audiences=["vault", "other"])
    assert sa_tokens.verify(token, KEY.public_key(), audiences, NOW).audiences == accepted


def test_a_single_string_audience_counts() -> None:
    token = with_claims(aud="vault")
    assert sa_tokens.verify(token, KEY.public_key(), ["vault"], NOW).audiences == ("vault",)


LEEWAY = sa_tokens.LEEWAY


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(NOW - LEEWAY, id="a-minute-early-is-leeway"),
        pytest.param(NOW + datetime.timedelta(seconds=600) + LEEWAY, id="a-minute-late-is-leeway"),
    ],
)
def test_go_joses_leeway(now: datetime.datetime) -> None:
    assert sa_tokens.verify(GOOD, KEY.public_key(), API, now).name == "ci"


def _tampered() -> str:
    header, _, signature = GOOD.split(".")
    claims = {**GOOD_CLAIMS, "kubernetes.io": {**GOOD_CLAIMS["kubernetes.io"], "namespace": "x"}}
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


EXPIRY = NOW + datetime.timedelta(seconds=600)
NONE_HEADER = b64(b'{"alg":"none"}')
UNEXPECTED = "service account token claims could not be validated due to unexpected"


@pytest.mark.parametrize(
    ("token", "audiences", "now", "problem", "message"),
    [
        pytest.param(
            _tampered(),
            API,
            NOW,
            TokenProblem.BAD_SIGNATURE,
            "go-jose/go-jose: error in cryptographic primitive",
            id="tampered-payload",
        ),
        pytest.param(
            signed(GOOD_CLAIMS, OTHER_KEY),
            API,
            NOW,
            TokenProblem.BAD_SIGNATURE,
            "go-jose/go-jose: error in cryptographic primitive",
            id="another-key",
        ),
        pytest.param(
            GOOD,
            ["vault"],
            NOW,
            TokenProblem.WRONG_AUDIENCE,
            'token audiences ["https://kubernetes.default.svc.cluster.local"] is invalid'
            ' for the target audiences ["vault"]',
            id="wrong-audience",
        ),
        pytest.param(
            with_claims(aud=[]),
            API,
            NOW,
            TokenProblem.WRONG_AUDIENCE,
            "token audiences [] is invalid for the target audiences"
            ' ["https://kubernetes.default.svc.cluster.local"]',
            id="no-audience-legacy-refused",
        ),
        pytest.param(
            GOOD,
            API,
            EXPIRY + LEEWAY + SECOND,
            TokenProblem.EXPIRED,
            "service account token has expired",
            id="expired",
        ),
        pytest.param(
            GOOD,
            API,
            NOW - LEEWAY - SECOND,
            TokenProblem.NOT_YET_VALID,
            "service account token is not valid yet",
            id="not-yet-valid",
        ),
        pytest.param(
            with_claims(nbf=None, iat=int(NOW.timestamp()) + 3600),
            API,
            NOW,
            TokenProblem.NOT_YET_VALID,
            f"{UNEXPECTED} validation error",
            id="issued-in-the-future",
        ),
        pytest.param(
            with_claims(iss="https://evil.example"),
            API,
            NOW,
            TokenProblem.WRONG_ISSUER,
            'token issuer "https://evil.example" is invalid',
            id="wrong-issuer",
        ),
        pytest.param(
            with_claims(exp=None),
            API,
            NOW,
            TokenProblem.BAD_CLAIMS,
            f"{UNEXPECTED} validation error",
            id="no-expiry",
        ),
        pytest.param(
            with_claims(exp="tomorrow"),
            API,
            NOW,
            TokenProblem.BAD_CLAIMS,
            f"{UNEXPECTED} validation error",
            id="expiry-not-a-number",
        ),
        pytest.param(
            with_claims(**{"kubernetes.io": None}),
            API,
            NOW,
            TokenProblem.BAD_CLAIMS,
            f"{UNEXPECTED} private claim",
            id="no-kubernetes-claims",
        ),
        pytest.param(
            with_claims(**{"kubernetes.io": {"namespace": "default", "serviceaccount": {}}}),
            API,
            NOW,
            TokenProblem.BAD_CLAIMS,
            f"{UNEXPECTED} private claim",
            id="no-service-account",
        ),
        pytest.param(
            f"{NONE_HEADER}.{GOOD.split('.')[1]}.",
            API,
            NOW,
            TokenProblem.MALFORMED,
            'go-jose/go-jose: unexpected signature algorithm "none"; expected ["ES256"]',
            id="alg-none",
        ),
        pytest.param(
            jwt.encode(GOOD_CLAIMS, "a shared secret of thirty-two bytes", algorithm="HS256"),
            API,
            NOW,
            TokenProblem.MALFORMED,
            'go-jose/go-jose: unexpected signature algorithm "HS256"; expected ["ES256"]',
            id="hmac-downgrade",
        ),
    ],
)
def test_refusals(
    token: str,
    audiences: list[str],
    now: datetime.datetime,
    problem: TokenProblem,
    message: str,
) -> None:
    with pytest.raises(sa_tokens.TokenRefused) as refused:
        sa_tokens.verify(token, KEY.public_key(), audiences, now)
    assert (refused.value.problem, str(refused.value)) == (problem, message)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="one-part"),
        pytest.param(f"{GOOD}.extra", id="four-parts"),
        pytest.param("!!!.@@@.###", id="not-base64url"),
        pytest.param(f"{b64(b'[1]')}.{GOOD.split('.', 1)[1]}", id="header-not-an-object"),
        pytest.param(signed(b"not json"), id="payload-not-json"),
        pytest.param(signed(b"[1, 2]"), id="payload-not-an-object"),
        pytest.param(signed(b'{"exp": NaN}'), id="nan"),
        pytest.param(signed(b'{"iss": "a", "iss": "b"}'), id="duplicate-claim"),
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(sa_tokens.TokenRefused) as refused:
        sa_tokens.verify(token, KEY.public_key(), API, NOW)
    assert refused.value.problem is TokenProblem.MALFORMED


def test_a_server_names_its_audiences() -> None:
    with pytest.raises(ValueError, match="at least one audience"):
        sa_tokens.verify(GOOD, KEY.public_key(), [], NOW)


@pytest.mark.parametrize(
    ("seconds", "errors"),
    [
        pytest.param(
            599,
            [
                "spec.expirationSeconds: Invalid value: 599: "
                "may not specify a duration less than 10 minutes"
            ],
            id="kubectl-duration-9m59s",
        ),
        pytest.param(600, [], id="ten-minutes"),
        pytest.param(1 << 32, [], id="the-largest"),
        pytest.param(
            (1 << 32) + 1,
            [
                "spec.expirationSeconds: Invalid value: 4294967297: "
                "may not specify a duration larger than 2^32 seconds"
            ],
            id="too-large",
        ),
    ],
)
def test_token_request_expiration_limits(seconds: int, errors: list[str]) -> None:
    assert [str(e) for e in sa_tokens.validate_expiration(seconds)] == errors


@pytest.mark.parametrize(
    ("requested", "max_seconds", "granted"),
    [
        pytest.param(None, 0, 3600, id="default-an-hour"),
        pytest.param(600, 0, 600, id="as-asked"),
        pytest.param(86400, 7200, 7200, id="capped-by-the-server"),
        pytest.param(None, 1800, 1800, id="default-capped"),
    ],
)
def test_requested_expiration(requested: int | None, max_seconds: int, granted: int) -> None:
    assert sa_tokens.requested_expiration(requested, max_seconds=max_seconds) == granted


_text = st.text(min_size=1, max_size=40)


@settings(max_examples=60)
@given(
    namespace=_text,
    name=_text,
    uid=_text,
    audiences=st.lists(_text, min_size=1, max_size=3),
    seconds=st.integers(sa_tokens.MIN_EXPIRATION_SECONDS, sa_tokens.MAX_EXPIRATION_SECONDS),
    now=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    ),
    pod=st.none() | st.builds(sa_tokens.ObjectRef, _text, _text),
)
def test_any_claims_round_trip(
    namespace: str,
    name: str,
    uid: str,
    audiences: list[str],
    seconds: int,
    now: datetime.datetime,
    pod: sa_tokens.ObjectRef | None,
) -> None:
    issued = sa_tokens.issue(
        KEY,
        namespace=namespace,
        name=name,
        uid=uid,
        audiences=audiences,
        expiration_seconds=seconds,
        now=now,
        pod=pod,
    )
    user = sa_tokens.verify(issued.token, KEY.public_key(), audiences[-1:], now)
    assert (user.namespace, user.name, user.uid) == (namespace, name, uid)
    assert user.username == f"system:serviceaccount:{namespace}:{name}"
    assert user.groups[1] == f"system:serviceaccounts:{namespace}"
    assert user.audiences == tuple(a for a in audiences if a == audiences[-1])
    assert user.extra.get(sa_tokens.POD_UID) == (None if pod is None else (pod.uid,))
    with pytest.raises(sa_tokens.TokenRefused):
        sa_tokens.verify(
            issued.token, KEY.public_key(), audiences, issued.expires_at + LEEWAY + SECOND
        )
