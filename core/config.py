"""Settings: ``anomaly-desk.toml`` plus ``ANOMALY_DESK_*`` environment variables.

The file: ``path`` (``--config``), else ``ANOMALY_DESK_CONFIG``, else ``./anomaly-desk.toml``, else
the user config directory's; with none, defaults and the environment alone.

Precedence: command-line flags, then the environment, then the file, then defaults. The
environment knows ``ANOMALY_DESK_CONFIG``, ``_DATA_DIR``, ``_HOST``, ``_PORT``, ``_ALLOWED_HOSTS``
(comma-separated), ``_WEBHOOK_SECRET`` and ``_SIGNING_SECRET``.

Secrets are never read from the file: it names an environment variable (``*_env``) or an OS
keyring service (``*_keyring``, the username being the connection's ``email`` / ``username``),
and they are resolved here, at load time, into ``SecretStr`` fields. Every mistake is one
``ConfigError`` that names the file and the key, and never carries a secret value.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from anomaly_desk.core.connections import Connection, JiraConnection, Platform, ServiceNowConnection
from anomaly_desk.core.models import error_path

APP = "anomaly-desk"
CONFIG_NAME = "anomaly-desk.toml"
ENV_PREFIX = "ANOMALY_DESK_"
PROVIDERS = ("jira", "servicenow")
# provider -> (secret field, the field holding the keyring username)
SECRET_FIELDS = {"jira": ("token", "email"), "servicenow": ("password", "username")}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(Exception):
    """The configuration is wrong; the message names the file and the key."""


class ReceiverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_event_subscribers: int = Field(32, ge=1)  # open GET /api/events streams; more get 503
    # Host names the receiver answers to besides loopback and its bound address (a reverse
    # proxy's name; "*.example.com" for a domain; "*" turns the check off). Every other Host is
    # refused: that is what stops a web page from reaching the desk by DNS rebinding.
    allowed_hosts: list[str] = Field(default_factory=list)
    webhook_secret_env: str | None = None  # env var holding the shared secret
    signing_secret_env: str | None = None  # env var holding a Standard Webhooks whsec_ key


class SyncSettings(BaseModel):
    """How the sync worker delivers notes (``[sync]`` in the config file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(64, ge=1)  # notes in flight at once, over all connections
    per_connection: int = Field(32, ge=1)  # …and to one Jira site / ServiceNow instance
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    refresh_interval_s: float = Field(300.0, ge=0)  # re-read linked tickets' states; 0 = never


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP))
    platform: Platform = Field(default_factory=Platform)
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    connections: list[Connection] = Field(default_factory=list)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    # Resolved at load time from the environment; never written anywhere.
    webhook_secret: SecretStr | None = None
    signing_secret: SecretStr | None = None
    source: Path | None = None  # the file these settings came from, for messages

    @model_validator(mode="after")
    def _unique_connection_names(self) -> Settings:
        names = [c.name for c in self.connections]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"connection names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def has_webhook_auth(self) -> bool:
        return self.webhook_secret is not None or self.signing_secret is not None


# Keys a user may write in the file, per table: for "did you mean" hints on unknown keys.
_FILE_KEYS: dict[str, set[str]] = {
    "": set(Settings.model_fields) - {"webhook_secret", "signing_secret", "source"},
    "platform": set(Platform.model_fields),
    "receiver": set(ReceiverSettings.model_fields),
    "jira": set(JiraConnection.model_fields) - {"token"},
    "servicenow": set(ServiceNowConnection.model_fields) - {"password"},
}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_config_path() -> Path | None:
    """``./anomaly-desk.toml``, else the user config directory's, else none."""
    for candidate in (Path.cwd() / CONFIG_NAME, platformdirs.user_config_path(APP) / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Read the file (``path``, env ``ANOMALY_DESK_CONFIG``, or the default places) and env.

    Connection secrets are resolved here, so a ``Settings`` that loaded is ready to connect.
    """
    env = dict(os.environ if env is None else env)
    explicit = path or (
        Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(f"{ENV_PREFIX}CONFIG") else None
    )
    source = explicit or default_config_path()
    where = str(source) if source else "settings"
    data: dict[str, Any] = _read_file(source) if source is not None else {}
    _check_file_shape(data, where)
    receiver = data.setdefault("receiver", {})
    from_env: dict[tuple[str, ...], str] = {}  # key path -> the variable that set it
    if env.get(f"{ENV_PREFIX}DATA_DIR"):
        data["data_dir"] = env[f"{ENV_PREFIX}DATA_DIR"]
        from_env[("data_dir",)] = f"{ENV_PREFIX}DATA_DIR"
    if env.get(f"{ENV_PREFIX}ALLOWED_HOSTS"):
        hosts = env[f"{ENV_PREFIX}ALLOWED_HOSTS"].split(",")
        receiver["allowed_hosts"] = [h.strip() for h in hosts if h.strip()]
        from_env[("receiver", "allowed_hosts")] = f"{ENV_PREFIX}ALLOWED_HOSTS"
    for key in ("host", "port"):
        if env.get(f"{ENV_PREFIX}{key.upper()}"):
            receiver[key] = env[f"{ENV_PREFIX}{key.upper()}"]
            from_env[("receiver", key)] = f"{ENV_PREFIX}{key.upper()}"
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("host", "port"):
            receiver[key] = value
            from_env.pop(("receiver", key), None)
        else:
            data[key] = value
            from_env.pop((key,), None)
    data["webhook_secret"] = _secret(
        env, receiver.get("webhook_secret_env"), "WEBHOOK_SECRET", where
    )
    data["signing_secret"] = _secret(
        env, receiver.get("signing_secret_env"), "SIGNING_SECRET", where
    )
    data["source"] = source
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, from_env) for error in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
    _check_urls(settings, where)
    settings.connections = _resolve_secrets(settings.connections, env, where)
    return settings


# ---------------------------------------------------------------------------------- the file


def _read_file(source: Path) -> dict[str, Any]:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {source} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # tomllib says "(at line N, column M)"
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def _check_file_shape(data: dict[str, Any], where: str) -> None:
    """Refuse secrets written into the file and tables of the wrong kind, before validation.

    Secrets are refused here, not by the models, so no validator ever sees the value.
    """
    for table in ("platform", "receiver"):
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{where}: {table}: must be a table ([{table}])")
    if "connections" in data and not isinstance(data["connections"], list):
        raise ConfigError(f"{where}: connections: must be an array of tables ([[connections]])")
    for forbidden in ("webhook_secret", "signing_secret"):
        if forbidden in data or forbidden in data.get("receiver", {}):
            raise ConfigError(
                f"{where}: {forbidden}: secrets are not kept in the config file; "
                f"set {ENV_PREFIX}{forbidden.upper()} or name a variable with "
                f"receiver.{forbidden}_env"
            )
    seen: dict[str, int] = {}
    for index, conn in enumerate(data.get("connections", [])):
        if not isinstance(conn, dict):
            continue  # the model says what is wrong with it
        label = _label(index, conn.get("name"))
        field = SECRET_FIELDS.get(str(conn.get("provider")), ("token", ""))[0]
        for key in ("token", "password"):
            if key in conn:
                theirs = field if conn.get("provider") in SECRET_FIELDS else key
                raise ConfigError(
                    f"{where}: {label}: {key}: secrets are not kept in the config file; name "
                    f"an environment variable with {theirs}_env (or an OS keyring service "
                    f"with {theirs}_keyring)"
                )
        url = conn.get("url")
        if isinstance(url, str) and "@" in urlsplit(url).netloc:
            raise ConfigError(
                f"{where}: {label}: url: credentials in the URL are not allowed; use "
                f"{field}_env or {field}_keyring (the URL is not repeated here)"
            )
        name = conn.get("name")
        if isinstance(name, str):
            if name in seen:
                raise ConfigError(
                    f"{where}: connections[{index}].name: duplicate connection name {name!r} "
                    f"(already used by connections[{seen[name]}])"
                )
            seen[name] = index


def _check_urls(settings: Settings, where: str) -> None:
    """What the models' own URL check lets through: no host, or a platform URL without scheme."""
    url = settings.platform.url
    if url is not None and not (url.startswith(("https://", "http://")) and urlsplit(url).netloc):
        raise ConfigError(f"{where}: platform.url: must be an https:// URL with a host")
    for index, conn in enumerate(settings.connections):
        if not urlsplit(conn.url).hostname:
            raise ConfigError(f"{where}: connections[{index}].url: has no host")


def _label(index: int, name: object) -> str:
    """``connections[1] (servicenow)``: the position and, when it has one, the name."""
    if isinstance(name, str) and name:
        return f"connections[{index}] ({name})"
    return f"connections[{index}]"


def _describe(error: Any, from_env: dict[tuple[str, ...], str]) -> str:
    """One pydantic error as ``key.path: message``, never with the offending value."""
    loc = list(error["loc"])
    table = ""
    # Discriminated unions put the tag in the path: connections.0.jira.url -> connections[0].url
    if len(loc) >= 3 and loc[0] == "connections" and loc[2] in PROVIDERS:
        table = str(loc.pop(2))
    elif len(loc) >= 2 and loc[0] in ("platform", "receiver"):
        table = str(loc[0])
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    if kind == "union_tag_not_found":
        loc.append("provider")
        message = 'missing; say provider = "jira" or "servicenow"'
    elif kind == "union_tag_invalid":
        loc.append("provider")
        message = 'must be "jira" or "servicenow"'
    elif kind == "extra_forbidden" and loc:
        near = difflib.get_close_matches(str(loc[-1]), _FILE_KEYS.get(table, set()), n=1)
        if near:
            message += f" (did you mean {near[0]!r}?)"
    path = error_path(tuple(loc)) if loc else ""
    var = from_env.get(tuple(str(p) for p in loc))
    if var:
        path += f" (from {var})"
    return f"{path}: {message}" if path else message


# ---------------------------------------------------------------------------------- secrets


def _secret(env: dict[str, str], named: str | None, default: str, where: str) -> str | None:
    """A receiver secret from the environment, trimmed (a pasted newline is not part of it)."""
    variable = named or f"{ENV_PREFIX}{default}"
    value = (env.get(variable) or "").strip()
    if named and not value:
        raise ConfigError(
            f"{where}: receiver.{default.lower()}_env names {named}, which is unset or empty"
        )
    if value and default == "SIGNING_SECRET":
        _check_signing_secret(value, variable)
    return value or None


def _check_signing_secret(value: str, variable: str) -> None:
    """A Standard Webhooks key is ``whsec_`` + base64; say so now, not with a traceback later."""
    try:
        base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{variable}: not a Standard Webhooks signing secret (expected whsec_ followed by "
            "base64, as the sender's webhook settings show it)"
        ) from None


def _resolve_secrets(
    connections: list[Connection], env: dict[str, str], where: str
) -> list[Connection]:
    """Every connection with its token / password read; all problems reported at once."""
    resolved: list[Connection] = []
    problems: list[str] = []
    for index, conn in enumerate(connections):
        try:
            resolved.append(_resolve(conn, index, env))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return resolved


def _resolve(conn: Connection, index: int, env: dict[str, str]) -> Connection:
    field, user_field = SECRET_FIELDS[conn.provider]
    label = _label(index, conn.name)
    env_name: str | None = getattr(conn, f"{field}_env")
    service: str | None = getattr(conn, f"{field}_keyring")
    if env_name and service:
        raise ConfigError(f"{label}: {field}_env, {field}_keyring: set one of them, not both")
    if env_name:
        value = _from_env(env, env_name, label, f"{field}_env")
    elif service:
        value = _from_keyring(service, getattr(conn, user_field), label, f"{field}_keyring")
    else:
        raise ConfigError(
            f"{label}: {field}_env: no {field} configured; name an environment variable with "
            f"{field}_env or an OS keyring service with {field}_keyring"
        )
    return conn.model_copy(update={field: SecretStr(value)})


def _from_env(env: dict[str, str], name: str, label: str, key: str) -> str:
    if not _ENV_NAME.match(name):
        # Not repeated: someone may have pasted the secret itself here.
        raise ConfigError(f"{label}: {key}: must be the name of an environment variable")
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{label}: {key}: environment variable {name} is unset or empty")
    return value


def _from_keyring(service: str, username: str, label: str, key: str) -> str:
    try:
        import keyring  # imported only when a connection asks for it: it probes backends
        import keyring.errors
    except ImportError:
        raise ConfigError(f"{label}: {key}: the keyring package is not installed") from None
    try:
        value = keyring.get_password(service, username)
    except keyring.errors.NoKeyringError:
        raise ConfigError(
            f"{label}: {key}: no usable OS keyring on this machine; use "
            f"{key.removesuffix('_keyring')}_env instead"
        ) from None
    except Exception as exc:  # backends fail in their own ways: locked, D-Bus gone, denied
        raise ConfigError(f"{label}: {key}: the OS keyring failed ({type(exc).__name__})") from None
    if not value:
        raise ConfigError(
            f"{label}: {key}: no keyring entry for service {service!r} and user {username!r}"
        )
    return value
