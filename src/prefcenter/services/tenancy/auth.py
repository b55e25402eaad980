"""Credentials: API keys bound to a role and a subtree, and contact link tokens.

Secrets are 32 random bytes; only their SHA-256 is stored (a secret of that entropy
needs no slow hash: hashing one costs about a microsecond). API keys read
``pc_<prefix>_<secret>``; link tokens are opaque.

Verified API keys are cached per process by that hash (``prefcenter.caches``): a key is
read from the database at most once per ``cache_max_age_seconds`` per process, revoking
it drops it at once here and, through the change fan-out, in every other process.
Expiry needs no invalidation: the cached entry keeps ``expires_at`` and is checked on
every use. WebSocket operations and subscription re-checks read the key afresh
(``fresh=True``): they are rare, and an open connection must notice a revocation made
by any means, SQL included.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefcenter import caches
from prefcenter.errors import ErrorCode, Forbidden, Invalid, NotFound, Unauthenticated
from prefcenter.models import ApiKey, Contact, ContactToken, Scope
from prefcenter.models.enums import Channel, Role, TokenPurpose
from prefcenter.services.common import parse_uuid, utcnow
from prefcenter.services.tenancy import authz
from prefcenter.services.tenancy.principals import Capability, Principal

API_KEY_PREFIX = "pc_"
#: Longer credentials are refused before any lookup (ours are about 60 characters).
MAX_CREDENTIAL_LENGTH = 200
#: Don't write ``last_used_at`` more often than this per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class _VerifiedKey:
    """What a verified key grants, cached by its hash; ``last_used_at`` as last written."""

    __slots__ = ("expires_at", "last_used_at", "principal", "rate_limit")

    def __init__(self, principal: Principal, expires_at: datetime | None,
                 last_used_at: datetime | None, rate_limit: int | None = None) -> None:
        self.principal = principal
        self.expires_at = expires_at
        self.last_used_at = last_used_at
        self.rate_limit = rate_limit


API_KEY_CACHE = caches.API_KEYS
_verified: caches.TtlCache[str, _VerifiedKey] = caches.register(
    caches.TtlCache(API_KEY_CACHE, max_size=10_000))


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str


#: The largest per-key limit accepted (requests per minute).
MAX_RATE_LIMIT = 100_000_000


async def create_api_key(scope: Scope, role: Role, name: str = "",
                         expires_at: datetime | None = None,
                         rate_limit_per_minute: int | None = None) -> IssuedKey:
    """Issue a key for a subtree. The secret is returned once and never stored.

    ``expires_at`` (a naive time is read as UTC) must lie in the future; None: the key
    works until it is revoked. ``rate_limit_per_minute``: this key's own limit on
    /graphql (0: none); None: the server's default.
    """
    if rate_limit_per_minute is not None and not 0 <= rate_limit_per_minute <= MAX_RATE_LIMIT:
        raise Invalid(f"'rateLimitPerMinute' must be 0 (no limit) to {MAX_RATE_LIMIT:,}.",
                      field="rateLimitPerMinute")
    if role == Role.OWNER and scope.parent_id is not None:
        raise Invalid("An OWNER key is bound to the tenant's root scope.", field="role")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= utcnow():
            raise Invalid("'expiresAt' must be in the future.", field="expiresAt")
    prefix = secrets.token_hex(4)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = await ApiKey.create(tenant_id=scope.tenant_id, scope=scope, role=role,
                              name=name.strip()[:200], prefix=prefix,
                              secret_hash=hash_secret(secret), expires_at=expires_at,
                              rate_limit_per_minute=rate_limit_per_minute)
    return IssuedKey(key=key, secret=secret)


async def issue_api_key(principal: Principal, scope_id: str, role: Role, name: str,
                        expires_at: datetime | None = None,
                        rate_limit_per_minute: int | None = None) -> IssuedKey:
    """OWNER keys manage keys: any subtree of their tenant, any role."""
    authz.require(principal, Capability.MANAGE_KEYS)
    from prefcenter.services.tenancy.scopes import get_scope

    scope = await get_scope(principal, scope_id)
    return await create_api_key(scope, role, name, expires_at, rate_limit_per_minute)


def cached_rate_limit(secret: str) -> int | None:
    """The key's own rate limit if this process has verified the key recently (the rate
    limiter runs before authentication); None: unknown here, or the server's default."""
    verified = _verified.get(hash_secret(secret))
    return verified.rate_limit if verified is not None else None


async def list_api_keys(principal: Principal) -> list[ApiKey]:
    authz.require(principal, Capability.MANAGE_KEYS)
    return list(await ApiKey.filter(tenant_id=principal.tenant_id).order_by("created_at"))


async def revoke_api_key(principal: Principal, key_id: str) -> ApiKey:
    authz.require(principal, Capability.MANAGE_KEYS)
    kid = parse_uuid(key_id, "keyId", "API key")
    key = await ApiKey.get_or_none(id=kid, tenant_id=principal.tenant_id)
    if key is None:
        raise NotFound("No such API key.", field="keyId")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await key.save(update_fields=["revoked_at"])
    await caches.invalidate_after_commit(API_KEY_CACHE, key.secret_hash)
    return key


async def revoke_api_key_by_id(key_id: str) -> bool:
    """For the CLI (no principal): revoke an active key; False when there is none."""
    kid = parse_uuid(key_id, "keyId", "API key")
    key = await ApiKey.get_or_none(id=kid, revoked_at=None)
    if key is None:
        return False
    changed = await ApiKey.filter(id=kid, revoked_at=None).update(revoked_at=utcnow())
    await caches.invalidate_after_commit(API_KEY_CACHE, key.secret_hash)
    return bool(changed)


async def _verify_api_key(digest: str) -> _VerifiedKey:
    generation = _verified.generation
    key = await ApiKey.get_or_none(secret_hash=digest).select_related("scope")
    if key is None or key.revoked_at is not None:
        _verified.discard(digest)
        raise Unauthenticated("Unknown or revoked API key.")
    verified = _VerifiedKey(
        Principal(kind="api_key", tenant_id=str(key.tenant_id), scope_id=str(key.scope_id),
                  scope_path=key.scope.path, role=Role(key.role), key_id=str(key.id),
                  label=key.name),
        key.expires_at, key.last_used_at, key.rate_limit_per_minute)
    _verified.put(digest, verified, generation)
    return verified


async def principal_from_api_key(secret: str, *, fresh: bool = False) -> Principal:
    """The key's principal; ``fresh``: read the key from the database, not the cache."""
    if len(secret) > MAX_CREDENTIAL_LENGTH:
        raise Unauthenticated("Unknown or revoked API key.")
    digest = hash_secret(secret)
    verified = None if fresh else _verified.get(digest)
    if verified is None:
        verified = await _verify_api_key(digest)
    now = utcnow()
    if verified.expires_at is not None and verified.expires_at <= now:
        raise Unauthenticated("This API key has expired; ask an owner for a new one.",
                              code=ErrorCode.EXPIRED)
    last = verified.last_used_at
    if last is None or now - last > LAST_USED_RESOLUTION:
        verified.last_used_at = now
        await ApiKey.filter(id=verified.principal.key_id).update(last_used_at=now)
    return verified.principal


# --- contact link tokens -------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ContactToken
    secret: str


async def issue_contact_token(
    contact: Contact, scope: Scope, purpose: TokenPurpose, ttl: timedelta,
    *, channel: Channel = Channel.ALL, data: dict[str, str] | None = None,
) -> IssuedToken:
    if str(scope.tenant_id) != str(contact.tenant_id):
        raise Invalid("A link binds a contact to a scope of its own tenant.", field="scopeId")
    secret = secrets.token_urlsafe(32)
    token = await ContactToken.create(
        token_hash=hash_secret(secret), contact=contact, scope=scope, purpose=purpose,
        channel=channel.value, expires_at=utcnow() + ttl, data=dict(data or {}))
    return IssuedToken(token=token, secret=secret)


class TokenError(Unauthenticated):
    """Why a link does not work: ``UNAUTHENTICATED`` (unknown/tampered) or ``EXPIRED``."""


async def resolve_contact_token(
    secret: str, purposes: set[TokenPurpose] | None = None, *, now: datetime | None = None,
) -> ContactToken:
    """The live token for a secret, with contact and scope loaded; else ``TokenError``."""
    if not secret or len(secret) > 128:
        raise TokenError("This link is not valid.")
    token = await ContactToken.get_or_none(token_hash=hash_secret(secret)).select_related(
        "contact", "scope")
    if token is None or token.revoked_at is not None:
        raise TokenError("This link is not valid.")
    if purposes is not None and token.purpose not in purposes:
        raise TokenError("This link is not valid.")
    if token.expires_at <= (now or utcnow()):
        raise TokenError("This link has expired.", code=ErrorCode.EXPIRED)
    return token


async def prune_contact_tokens(retention: timedelta, *, now: datetime | None = None,
                               batch: int = 1000) -> int:
    """Delete link tokens that expired more than ``retention`` ago; returns how many.

    Every message carries fresh links, so without this the table grows with every
    campaign. Until then an expired link still answers "expired"; the ledger, not the
    token, is the record of what a link did.
    """
    cutoff = (now or utcnow()) - retention
    deleted = 0
    while True:
        ids = await ContactToken.filter(expires_at__lt=cutoff).limit(batch).values_list(
            "id", flat=True)
        if not ids:
            return deleted
        deleted += await ContactToken.filter(id__in=list(ids)).delete()


def principal_from_token(token: ContactToken) -> Principal:
    return Principal(kind="contact", tenant_id=str(token.contact.tenant_id),
                     scope_id=str(token.scope_id), scope_path=token.scope.path,
                     contact_id=str(token.contact_id), token_id=str(token.id),
                     purpose=TokenPurpose(token.purpose))


async def principal_from_bearer(credential: str, *, fresh: bool = False) -> Principal:
    """``Authorization: Bearer`` value -> principal. Contact tokens must be PREFERENCES.

    ``fresh``: check an API key against the database, not the per-process cache."""
    credential = credential.strip()
    if credential.startswith(API_KEY_PREFIX):
        return await principal_from_api_key(credential, fresh=fresh)
    token = await resolve_contact_token(credential, {TokenPurpose.PREFERENCES})
    return principal_from_token(token)


def require_owner_scope(principal: Principal, scope: Scope) -> None:
    if not authz.path_is_within(scope.path, principal.scope_path):
        raise Forbidden("Outside this key's subtree.")
