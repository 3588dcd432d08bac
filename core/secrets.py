"""Secrets from Vault (or OpenBao): a small reader of KV version 2, with a cache.

A reference is ``mount/path#key`` (``secret/anomaly-desk/jira#api_token``): the first segment
is the KV v2 mount, the rest the secret's path, after ``#`` the key inside it. It is read with
``GET $VAULT_ADDR/v1/<mount>/data/<path>``.

Where Vault is and how to log in, from the environment as the Vault CLI has it:

* ``VAULT_ADDR`` (required), ``VAULT_NAMESPACE`` (sent as ``X-Vault-Namespace``),
  ``VAULT_CACERT`` (a CA bundle for Vault's TLS certificate);
* ``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID``: an AppRole login (``POST /v1/auth/approle/login``),
  its token kept until shortly before its lease ends, and renewed by a new login on a 403;
* else ``VAULT_TOKEN``.

Each secret's data is cached for ``ttl_s`` seconds (``[secrets] vault_ttl_s``); a fresh
lookup reads past the cache (a reload, a re-read after a provider refused the credential), once
per secret however many references name it. Every failure is a ``VaultError`` whose message names the reference and Vault's address, never a
value.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

VAULT_TTL_S = 300.0  # how long a secret read from Vault is used before it is read again
TIMEOUT_S = 10.0  # per request to Vault
LOGIN_MARGIN_S = 30.0  # an AppRole token is replaced this long before its lease ends
_SEGMENT = re.compile(r"^[A-Za-z0-9_.@+=:-]+$")


class VaultError(Exception):
    """A secret could not be read from Vault; the message names the reference, never a value."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """``mount/path#key``: a key of a KV v2 secret."""

    mount: str
    path: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """The reference in ``text``; a malformed one is a ``VaultError`` that does not repeat
        it (someone may have pasted the secret itself)."""
        location, hash_, key = text.strip().partition("#")
        segments = location.strip("/").split("/")
        if (
            not hash_
            or not key
            or len(segments) < 2
            or not all(
                _SEGMENT.match(segment) and segment not in (".", "..") for segment in segments
            )
        ):
            raise VaultError(
                "must be a Vault reference mount/path#key, e.g. secret/anomaly-desk/jira#api_token"
            )
        return cls(segments[0], "/".join(segments[1:]), key)

    @property
    def location(self) -> str:
        """``mount/path``: the secret (all its keys)."""
        return f"{self.mount}/{self.path}"

    def __str__(self) -> str:
        return f"{self.location}#{self.key}"

    @property
    def url_path(self) -> str:
        """The KV v2 read: ``/v1/<mount>/data/<path>``."""
        return f"/v1/{quote(self.mount)}/data/{quote(self.path)}"


@dataclass(frozen=True, slots=True)
class VaultAccess:
    """Where Vault is and how to log in (from ``VAULT_*`` variables); secrets never in a repr."""

    addr: str
    token: str | None = field(default=None, repr=False)
    role_id: str | None = field(default=None, repr=False)
    secret_id: str | None = field(default=None, repr=False)
    namespace: str | None = None
    cacert: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultAccess:
        def get(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        addr = get("VAULT_ADDR")
        if addr is None:
            raise VaultError("VAULT_ADDR is unset: say where Vault is (https://vault.example:8200)")
        if not addr.startswith(("https://", "http://")):
            raise VaultError("VAULT_ADDR must be an https:// URL (http:// for a local dev server)")
        access = cls(
            addr=addr.rstrip("/"),
            token=get("VAULT_TOKEN"),
            role_id=get("VAULT_ROLE_ID"),
            secret_id=get("VAULT_SECRET_ID"),
            namespace=get("VAULT_NAMESPACE"),
            cacert=get("VAULT_CACERT"),
        )
        if (access.role_id is None) != (access.secret_id is None):
            raise VaultError("an AppRole login needs both VAULT_ROLE_ID and VAULT_SECRET_ID")
        if access.token is None and access.role_id is None:
            raise VaultError(
                f"no Vault credential for {access.addr}: set VAULT_TOKEN, or VAULT_ROLE_ID and "
                "VAULT_SECRET_ID for an AppRole login"
            )
        return access

    @property
    def approle(self) -> bool:
        return self.role_id is not None


class VaultReader:
    """Reads KV v2 secrets from one Vault, caching each secret's data for ``ttl_s``.

    Synchronous (configuration loading is); safe to share between threads (a reload runs in
    a worker thread while the receiver serves).
    """

    def __init__(
        self, access: VaultAccess, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.access = access
        self._transport = transport
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, object]]] = {}  # location -> (read at, data)
        self._login: tuple[str, float] | None = None  # AppRole token, usable until
        self.reads = 0  # requests for secrets made (not cache hits): tests, diagnostics

    def __repr__(self) -> str:
        auth = "approle" if self.access.approle else "token"
        return f"VaultReader(addr={self.access.addr!r}, auth={auth}, cached={len(self._cache)})"

    def read(
        self, ref: SecretRef, *, ttl_s: float = VAULT_TTL_S, newer_than: float | None = None
    ) -> str:
        """The value of ``ref``: from the cache when read less than ``ttl_s`` ago (and, with
        ``newer_than``, a ``time.monotonic()``, after that moment), else from Vault."""
        with self._lock:
            cached = self._cache.get(ref.location)
            if (
                cached is None
                or time.monotonic() - cached[0] >= ttl_s
                or (newer_than is not None and cached[0] < newer_than)
            ):
                with self._client() as client:
                    cached = (time.monotonic(), self._fetch(client, ref))
                self._cache[ref.location] = cached
            data = cached[1]
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise VaultError(
                f"{ref}: the secret {ref.location} has no key {ref.key!r} (its keys: {keys})"
            )
        value = data[ref.key]
        if not isinstance(value, str):
            raise VaultError(f"{ref}: the value is not a string ({type(value).__name__})")
        if not value.strip():
            raise VaultError(f"{ref}: the value is empty")
        return value.strip()  # a pasted newline is not part of a secret

    def forget(self) -> None:
        """Drop every cached secret (and the AppRole token)."""
        with self._lock:
            self._cache.clear()
            self._login = None

    # -- requests ------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        headers = {"Accept": "application/json", "User-Agent": "anomaly-desk"}
        if self.access.namespace:
            headers["X-Vault-Namespace"] = self.access.namespace
        return httpx.Client(
            base_url=self.access.addr,
            headers=headers,
            timeout=TIMEOUT_S,
            verify=self.access.cacert or True,
            transport=self._transport,
            follow_redirects=False,
        )

    def _fetch(self, client: httpx.Client, ref: SecretRef) -> dict[str, object]:
        response = self._get(client, ref, self._token(client, ref))
        if response.status_code == 403 and self.access.approle:
            self._login = None  # the login's token may have been revoked: log in once more
            response = self._get(client, ref, self._token(client, ref))
        self.reads += 1
        if response.status_code == 404:
            raise VaultError(
                f"{ref}: no secret at {ref.location} in Vault at {self.access.addr} (KV v2 read "
                f"GET {ref.url_path} answered 404)"
            )
        if response.status_code == 403:
            raise VaultError(
                f"{ref}: Vault at {self.access.addr} refused the read (403 permission denied: "
                "the token's policies do not allow reading it, or the token is not valid)"
            )
        if response.status_code != 200:
            raise VaultError(
                f"{ref}: Vault at {self.access.addr} answered HTTP {response.status_code}"
                f"{_errors(response)}"
            )
        data = _json(response)
        inner = data.get("data") if isinstance(data, dict) else None
        values = inner.get("data") if isinstance(inner, dict) else None
        if not isinstance(values, dict):
            raise VaultError(
                f"{ref}: Vault's answer is not a KV version 2 secret (is {ref.mount} a KV v2 mount?)"
            )
        return values

    def _get(self, client: httpx.Client, ref: SecretRef, token: str) -> httpx.Response:
        try:
            return client.get(ref.url_path, headers={"X-Vault-Token": token})
        except httpx.HTTPError as exc:
            raise VaultError(
                f"{ref}: Vault at {self.access.addr} cannot be reached ({type(exc).__name__})"
            ) from None

    def _token(self, client: httpx.Client, ref: SecretRef) -> str:
        if not self.access.approle:
            assert self.access.token is not None  # from_env checked: a token or an AppRole
            return self.access.token
        if self._login is not None and time.monotonic() < self._login[1]:
            return self._login[0]
        body = {"role_id": self.access.role_id, "secret_id": self.access.secret_id}
        try:
            response = client.post("/v1/auth/approle/login", json=body)
        except httpx.HTTPError as exc:
            raise VaultError(
                f"{ref}: Vault at {self.access.addr} cannot be reached ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise VaultError(
                f"{ref}: the AppRole login at {self.access.addr} failed (HTTP "
                f"{response.status_code}{_errors(response)})"
            )
        answer = _json(response)
        auth = answer.get("auth") if isinstance(answer, dict) else None
        token = auth.get("client_token") if isinstance(auth, dict) else None
        lease = auth.get("lease_duration") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise VaultError(f"{ref}: the AppRole login at {self.access.addr} gave no token")
        seconds = float(lease) if isinstance(lease, int | float) and lease > 0 else 3600.0
        self._login = (token, time.monotonic() + max(seconds - LOGIN_MARGIN_S, seconds / 2))
        return token


def _json(response: httpx.Response) -> object:
    try:
        data: object = response.json()
    except ValueError:
        return None
    return data


def _errors(response: httpx.Response) -> str:
    """Vault's own ``errors`` (they name paths and reasons, never values), shortened."""
    data = _json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    words = "; ".join(str(e) for e in errors if e) if isinstance(errors, list) else ""
    return f": {words[:200]}" if words else ""


_readers: dict[VaultAccess, VaultReader] = {}
_readers_lock = threading.Lock()


def vault_reader(env: Mapping[str, str]) -> VaultReader:
    """The process's reader for the Vault ``env`` names (one per address and login, so its
    cache lives as long as the process)."""
    access = VaultAccess.from_env(env)
    with _readers_lock:
        reader = _readers.get(access)
        if reader is None:
            reader = _readers[access] = VaultReader(access)
        return reader


@dataclass(frozen=True)
class VaultLookup:
    """What resolving a configuration needs of Vault: the environment that says where it is,
    how long a cached value is good, and whether to read past the cache (``fresh``: what was
    cached before this lookup was made; a secret two references name is still read once)."""

    env: Mapping[str, str] = field(repr=False)
    ttl_s: float = VAULT_TTL_S
    fresh: bool = False
    since: float = field(default_factory=time.monotonic, repr=False)

    def read(self, reference: str) -> str:
        """The value ``reference`` (``mount/path#key``) names; ``VaultError`` otherwise."""
        ref = SecretRef.parse(reference)
        try:
            reader = vault_reader(self.env)
        except VaultError as exc:  # where Vault is, how to log in: say which secret needed it
            raise VaultError(f"{ref}: {exc}") from None
        return reader.read(ref, ttl_s=self.ttl_s, newer_than=self.since if self.fresh else None)
