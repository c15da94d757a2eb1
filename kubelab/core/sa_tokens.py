"""ServiceAccount tokens as Kubernetes issues and checks them: the bound tokens of the
TokenRequest API (`kubectl create token ci --duration=10m`), signed, audience-bound, expiring.

Kubernetes' counterparts: `pkg/serviceaccount/claims.go` (the claims), `jwt.go` (signing, the
token authenticator) and the TokenRequest validation (`pkg/apis/authentication/validation`).

A token is a JWS compact serialization signed ES256 with the cluster's `sa.key` (kubelab's keys
are ECDSA P-256, see kubelab.core.certs; Kubernetes signs ECDSA keys so, RSA keys RS256). Its
header names the key (`kid`: base64url of the SHA-256 of the public key's DER, Kubernetes'
`keyIDFromPublicKey`); its claims are `iss`, `sub` (`system:serviceaccount:NS:NAME`), `aud` (a
list), `iat` = `nbf` = the time of issue, `exp`, `jti`, and `kubernetes.io` naming the namespace,
the ServiceAccount (name, uid) and, for a pod's projected token, the pod.

The JWS itself (base64url framing, the ES256 signature's r||s encoding, header checks) is PyJWT's
(`jwt.PyJWS`): a library kept up since 2015, typed, with a fixed allow-list of algorithms, so
`alg: none` or an HMAC downgrade never reaches a key. The claims are read here, not by PyJWT's
`decode`, because its clock is the wall clock and its errors are not Kubernetes': the payload is
parsed strictly (duplicate keys, NaN and non-object payloads refused) and checked with the given
`now`, in Kubernetes' order and words:

- not three base64url parts, undecodable JSON, an algorithm other than ES256: malformed (the
  apiserver treats such a token as not a ServiceAccount token: 401 without a reason);
- a signature the key does not verify: "go-jose/go-jose: error in cryptographic primitive";
- another issuer: `token issuer "..." is invalid`;
- no audience in common: `token audiences [...] is invalid for the target audiences [...]`;
- `nbf` in the future, `exp` in the past, both beyond go-jose's one minute of leeway: "service
  account token is not valid yet", "service account token has expired"; `iat` in the future:
  the opaque "... due to unexpected validation error".

Stricter than Kubernetes on purpose: a token without `exp` or without an audience is refused
(Kubernetes still accepts such legacy Secret-based tokens; kubelab never issues them). What this
module cannot check is whether the ServiceAccount still exists with the token's uid: the
apiserver does that with its store ("service account UID (%s) does not match claim (%s)").
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from kubelab.core.certs import PrivateKey, PublicKey
from kubelab.core.errors import ErrorType, FieldError, abbreviate

ISSUER = "https://kubernetes.default.svc.cluster.local"
# The apiserver's --api-audiences defaults to its issuer; a TokenRequest without audiences
# gets these.
DEFAULT_AUDIENCES = (ISSUER,)
ALGORITHM = "ES256"
DEFAULT_EXPIRATION_SECONDS = 60 * 60
MIN_EXPIRATION_SECONDS = 10 * 60
MAX_EXPIRATION_SECONDS = 1 << 32
# go-jose's DefaultLeeway, which Kubernetes' claim validation uses.
LEEWAY = datetime.timedelta(minutes=1)

SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"

_JWS = jwt.PyJWS()
_CRYPTO_FAILURE = "go-jose/go-jose: error in cryptographic primitive"
_UNEXPECTED_VALIDATION = (
    "service account token claims could not be validated due to unexpected validation error"
)
_UNEXPECTED_PRIVATE_CLAIM = (
    "service account token claims could not be validated due to unexpected private claim"
)


class TokenProblem(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    WRONG_ISSUER = "wrong issuer"
    WRONG_AUDIENCE = "wrong audience"
    NOT_YET_VALID = "not yet valid"
    EXPIRED = "expired"
    BAD_CLAIMS = "bad claims"


class TokenRefused(Exception):
    """A token the authenticator does not accept: `problem` says which check, the message is
    Kubernetes' where it has one."""

    def __init__(self, problem: TokenProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ObjectRef:
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A TokenRequest's status: the token and when it expires."""

    token: str
    expires_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class TokenUser:
    """Who a token authenticates as (Kubernetes' user.Info) and for which audiences."""

    username: str
    uid: str
    groups: tuple[str, ...]
    namespace: str
    name: str
    audiences: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    return (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}", AUTHENTICATED_GROUP)


def key_id(public_key: PublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def validate_expiration(seconds: int) -> list[FieldError]:
    """A TokenRequest's `spec.expirationSeconds`, as Kubernetes validates it."""
    path = "spec.expirationSeconds"
    if seconds < MIN_EXPIRATION_SECONDS:
        detail = "may not specify a duration less than 10 minutes"
        return [FieldError(path, ErrorType.INVALID, detail, seconds)]
    if seconds > MAX_EXPIRATION_SECONDS:
        detail = "may not specify a duration larger than 2^32 seconds"
        return [FieldError(path, ErrorType.INVALID, detail, seconds)]
    return []


def requested_expiration(requested: int | None, *, max_seconds: int = 0) -> int:
    """The lifetime a TokenRequest gets: what it asks (validated first), else one hour; capped
    at `max_seconds` when positive (the apiserver's --service-account-max-token-expiration)."""
    seconds = DEFAULT_EXPIRATION_SECONDS if requested is None else requested
    return min(seconds, max_seconds) if max_seconds > 0 else seconds


def issue(
    key: PrivateKey,
    *,
    namespace: str,
    name: str,
    uid: str,
    audiences: Sequence[str],
    expiration_seconds: int,
    now: datetime.datetime,
    issuer: str = ISSUER,
    pod: ObjectRef | None = None,
    jti: str | None = None,
) -> IssuedToken:
    """A signed token for ServiceAccount `namespace/name` (its `uid`), valid from `now` for
    `expiration_seconds`, for `audiences` (DEFAULT_AUDIENCES when empty)."""
    issued_at = math.floor(now.timestamp())
    expires = issued_at + expiration_seconds
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
    if pod is not None:
        private["pod"] = {"name": pod.name, "uid": pod.uid}
    claims = {
        "aud": list(audiences or DEFAULT_AUDIENCES),
        "exp": expires,
        "iat": issued_at,
        "iss": issuer,
        "jti": jti or str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": issued_at,
        "sub": username(namespace, name),
    }
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"kid": key_id(key.public_key()), "typ": None}
    token = _JWS.encode(payload, key, algorithm=ALGORITHM, headers=headers)
    return IssuedToken(token, datetime.datetime.fromtimestamp(expires, datetime.UTC))


def verify(
    token: str,
    public_key: PublicKey,
    audiences: Sequence[str],
    now: datetime.datetime,
    *,
    issuer: str = ISSUER,
) -> TokenUser:
    """Who `token` authenticates as, for a server that is any of `audiences`, at `now`;
    TokenRefused naming the first check it fails."""
    if not audiences:
        raise ValueError("a server verifies tokens for at least one audience")
    claims = _verified_claims(token, public_key)
    if claims.get("iss") != issuer:
        shown = abbreviate(_go_quote(claims.get("iss")))
        raise TokenRefused(TokenProblem.WRONG_ISSUER, f"token issuer {shown} is invalid")
    token_audiences = _audiences(claims.get("aud"))
    common = tuple(a for a in token_audiences if a in audiences)
    if not common:
        shown, targets = abbreviate(_go_list(token_audiences)), _go_list(audiences)
        message = f"token audiences {shown} is invalid for the target audiences {targets}"
        raise TokenRefused(TokenProblem.WRONG_AUDIENCE, message)
    _check_times(claims, now)
    return _user(claims, common)


def _verified_claims(token: str, public_key: PublicKey) -> dict[str, Any]:
    if token.count(".") != 2:
        raise TokenRefused(TokenProblem.MALFORMED, "malformed token: not three parts")
    try:
        alg = _JWS.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError as err:
        raise TokenRefused(TokenProblem.MALFORMED, f"malformed token: {err}") from None
    if alg != ALGORITHM:
        raise TokenRefused(
            TokenProblem.MALFORMED,
            f"go-jose/go-jose: unexpected signature algorithm {abbreviate(_go_quote(alg))}; "
            f'expected ["{ALGORITHM}"]',
        )
    try:
        payload = _JWS.decode_complete(token, public_key, algorithms=[ALGORITHM])["payload"]
    except jwt.InvalidSignatureError:
        raise TokenRefused(TokenProblem.BAD_SIGNATURE, _CRYPTO_FAILURE) from None
    except jwt.InvalidTokenError as err:
        raise TokenRefused(TokenProblem.MALFORMED, f"malformed token: {err}") from None
    try:
        claims = json.loads(payload, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise TokenRefused(TokenProblem.MALFORMED, f"malformed token: {err}") from None
    if not isinstance(claims, dict):
        raise TokenRefused(TokenProblem.MALFORMED, "malformed token: claims are not an object")
    return claims


def _check_times(claims: Mapping[str, Any], now: datetime.datetime) -> None:
    moment = now.timestamp()
    leeway = LEEWAY.total_seconds()
    not_before, expires, issued_at = (_numeric_date(claims, c) for c in ("nbf", "exp", "iat"))
    if expires is None:
        raise TokenRefused(TokenProblem.BAD_CLAIMS, _UNEXPECTED_VALIDATION)
    if not_before is not None and moment + leeway < not_before:
        raise TokenRefused(TokenProblem.NOT_YET_VALID, "service account token is not valid yet")
    if moment - leeway > expires:
        raise TokenRefused(TokenProblem.EXPIRED, "service account token has expired")
    if issued_at is not None and moment + leeway < issued_at:
        raise TokenRefused(TokenProblem.NOT_YET_VALID, _UNEXPECTED_VALIDATION)


def _user(claims: Mapping[str, Any], common: tuple[str, ...]) -> TokenUser:
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise TokenRefused(TokenProblem.BAD_CLAIMS, _UNEXPECTED_PRIVATE_CLAIM)
    namespace = private.get("namespace")
    account = _ref(private.get("serviceaccount"))
    if not isinstance(namespace, str) or not namespace or account is None:
        raise TokenRefused(TokenProblem.BAD_CLAIMS, _UNEXPECTED_PRIVATE_CLAIM)
    extra: dict[str, tuple[str, ...]] = {}
    if "pod" in private:
        pod = _ref(private["pod"])
        if pod is None:
            raise TokenRefused(TokenProblem.BAD_CLAIMS, _UNEXPECTED_PRIVATE_CLAIM)
        extra[POD_NAME], extra[POD_UID] = (pod.name,), (pod.uid,)
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        extra[CREDENTIAL_ID] = (f"JTI={jti}",)
    return TokenUser(
        username=username(namespace, account.name),
        uid=account.uid,
        groups=groups(namespace),
        namespace=namespace,
        name=account.name,
        audiences=common,
        extra=extra,
    )


def _ref(value: object) -> ObjectRef | None:
    if not isinstance(value, dict):
        return None
    name, uid = value.get("name"), value.get("uid")
    if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
        return None
    return ObjectRef(name, uid)


def _audiences(value: object) -> tuple[str, ...]:
    """`aud` as RFC 7519 allows it: one string or a list of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return tuple(value)
    return ()


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRefused(TokenProblem.BAD_CLAIMS, _UNEXPECTED_VALIDATION)
    return float(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in a JSON object")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _go_quote(value: object) -> str:
    """Go's %q of a string (JSON's quoting is the same for printable text)."""
    return json.dumps(value if isinstance(value, str) else "", ensure_ascii=False)


def _go_list(values: Sequence[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(_go_quote(v) for v in values) + "]"
