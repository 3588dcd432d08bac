"""Settings: ``anomaly-desk.toml`` plus ``ANOMALY_DESK_*`` environment variables.

``Settings`` is a pydantic-settings ``BaseSettings``; its sources, highest precedence first:

1. command-line flags (``load_settings(overrides=...)``: ``host``, ``port``, ``data_dir``…);
2. the environment: every setting as ``ANOMALY_DESK_<KEY>``, nested with ``__``
   (``ANOMALY_DESK_RECEIVER__PORT``, ``ANOMALY_DESK_SYNC__CONCURRENCY``, ``ANOMALY_DESK_PLATFORM__NAME``;
   a whole table or ``connections`` as JSON), then the short names kept from before:
   ``ANOMALY_DESK_HOST``, ``_PORT`` and ``_ALLOWED_HOSTS`` (comma-separated) for ``[receiver]``;
3. the file: ``path`` (``--config``), else ``ANOMALY_DESK_CONFIG``, else ``./anomaly-desk.toml``,
   else the user config directory's; with none, defaults and the environment alone;
4. the receiver's secrets: ``ANOMALY_DESK_WEBHOOK_SECRET`` / ``ANOMALY_DESK_SIGNING_SECRET``, or
   the variables that ``receiver.webhook_secret_env`` / ``signing_secret_env`` name (trimmed);
5. defaults.

Secrets are never read from the file: it names an environment variable (``*_env``), an OS
keyring service (``*_keyring``; the username is the connection's ``email`` / ``username``, and
for the platform's API token, ``[platform] token_keyring``, the platform's ``name``) or a Vault
secret (``*_vault = "mount/path#key"``, read by ``secrets``; ``[secrets] vault_ttl_s`` is how
long a value read from Vault is used), exactly one of them per secret, and they are resolved
here, at load time, into ``SecretStr`` fields. ``SettingsLoader`` loads again the same way (a
reload) and re-reads the secrets of running settings (after a provider refused one). Every
mistake is one ``ConfigError`` that names the file and the key (and the variable or the Vault
reference, when one set it), and never carries a secret value.

What pydantic-settings does not do for us, kept small here: the short variable names (they do
not follow the field path), the receiver secrets (a variable named by another setting, trimmed,
checked), connection secrets from the OS keyring, and the messages that name keys.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import ipaddress
import json
import os
import re
import stat
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from anomaly_desk.core.connections import Connection, JiraConnection, Platform, ServiceNowConnection
from anomaly_desk.core.models import error_path
from anomaly_desk.core.rules import Rule
from anomaly_desk.core.secrets import VAULT_TTL_S, VaultError, VaultLookup

APP = "anomaly-desk"
CONFIG_NAME = "anomaly-desk.toml"
ENV_PREFIX = "ANOMALY_DESK_"
NESTED = "__"  # ANOMALY_DESK_RECEIVER__PORT -> receiver.port
PROVIDERS = ("jira", "servicenow")
TABLES = ("platform", "receiver", "sync", "dashboard", "secrets")
# provider -> (secret field, the field holding the keyring username)
SECRET_FIELDS = {"jira": ("token", "email"), "servicenow": ("password", "username")}
SOURCES = ("env", "keyring", "vault")  # where a secret may come from: <field>_<source>
RECEIVER_SECRETS = ("webhook_secret", "signing_secret")
# What holds secrets besides the connections (by name), for ``refresh_secrets``/``vault_backed``:
# brackets, which a connection's name cannot have.
PLATFORM_TABLE, RECEIVER_TABLE = "[platform]", "[receiver]"
# The short variables, kept from before the nested names: variable suffix -> key path.
SHORT_VARIABLES: dict[str, tuple[str, str]] = {
    "HOST": ("receiver", "host"),
    "PORT": ("receiver", "port"),
    "ALLOWED_HOSTS": ("receiver", "allowed_hosts"),
}
# Fields the generic environment source leaves alone: resolved by their own rules, or ours.
_NOT_FROM_ENV = frozenset({"webhook_secret", "signing_secret", "source"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

KeyPath = tuple[str, ...]


class ConfigError(Exception):
    """The configuration is wrong; the message names the file and the key."""


def _host_list(value: object) -> object:
    """``allowed_hosts`` from a variable: a comma list (``a.example, *.b.example``) or a JSON
    array; a list (the file's) as it is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            decoded: object = json.loads(text)
        except ValueError:
            return value  # the model says it is not a list
        return decoded
    return [host.strip() for host in text.split(",") if host.strip()]


class ReceiverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_event_subscribers: int = Field(32, ge=1)  # open GET /api/events streams; more get 503
    # Host names the receiver answers to besides loopback and its bound address (a reverse
    # proxy's name; "*.example.com" for a domain; "*" turns the check off). Every other Host is
    # refused: that is what stops a web page from reaching the desk by DNS rebinding.
    # NoDecode: a variable may give a comma list, not only JSON.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret_env: str | None = None  # env var holding the shared secret
    signing_secret_env: str | None = None  # env var holding a Standard Webhooks whsec_ key
    webhook_secret_vault: str | None = None  # …or their Vault references (mount/path#key)
    signing_secret_vault: str | None = None

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _host_list(value)


class SyncSettings(BaseModel):
    """How the sync worker delivers notes (``[sync]`` in the config file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(64, ge=1)  # notes in flight at once, over all connections
    per_connection: int = Field(32, ge=1)  # …and to one Jira site / ServiceNow instance
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    refresh_interval_s: float = Field(300.0, ge=0)  # re-read linked tickets' states; 0 = never
    health_check_s: float = Field(60.0, ge=0)  # check every connection; 0 = only after failures
    # name the operator in the notes a person's action sends: "Comment from Qualytics (ana): …"
    name_operator: bool = False


class SecretsSettings(BaseModel):
    """How secrets are read (``[secrets]``); where Vault is comes from ``VAULT_ADDR`` & co."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A value read from Vault is used this long; then read again (the receiver re-reads its
    # Vault secrets this often, and at once when a provider refuses a credential).
    vault_ttl_s: float = Field(VAULT_TTL_S, gt=0)


class DashboardSettings(BaseModel):
    """The terminal dashboard's own preferences (it reads the same file)."""

    model_config = ConfigDict(extra="forbid")

    confirm_notes: bool = True  # ask before a key sends notes to linked tickets (a, x)


MAX_DAYS = 36_500
MIN_COMPACT_EVERY_H = 0.1


class RetentionSettings(BaseModel):
    """What leaves the hot store for the cold archive, and when (``[retention]``, issue #16)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # a century at most: further back than that, no date computes (year -711 for a million)
    archive_after_days: int = Field(30, ge=0, le=MAX_DAYS)  # archived, unchanged this long: cold
    delete_after_days: int | None = Field(None, ge=1, le=MAX_DAYS)  # cold months older: deleted
    compact_every_h: float = Field(24.0, ge=0, le=24 * MAX_DAYS)  # 0 = never by itself

    @field_validator("compact_every_h")
    @classmethod
    def _not_a_loop(cls, value: float) -> float:
        """Every 6 minutes at the most: a tiny interval made ``serve`` compact in a loop."""
        if 0 < value < MIN_COMPACT_EVERY_H:
            raise ValueError(f"compact at most every {MIN_COMPACT_EVERY_H} h (0: never by itself)")
        return value


class Settings(BaseSettings):
    """Everything the desk is configured with; build it with ``load_settings``.

    ``Settings()`` alone loads from ``os.environ`` and the default file (see the module doc) but
    leaves connection secrets unresolved and errors unformatted.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED,
        env_ignore_empty=True,  # ANOMALY_DESK_PORT= is unset, as before
        case_sensitive=False,
    )

    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP))
    platform: Platform = Field(default_factory=Platform)
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    connections: list[Connection] = Field(default_factory=list)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    rules: list[Rule] = Field(default_factory=list)  # [[rules]]: tickets raised automatically
    # who acts through the dashboard, as comments and history name them (default: the OS user)
    operator: str | None = Field(None, min_length=1, max_length=100)
    # the operator's address in the ticketing systems: ServiceNow caller, Jira reporter/watcher
    operator_email: str | None = Field(
        None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"
    )
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

    @model_validator(mode="after")
    def _rules_fit(self) -> Settings:
        """Each rule names a configured connection, with the ticket type its provider has; no
        two rules share a name (it keys their counters and their URL)."""
        kinds = {c.name: c.provider for c in self.connections}
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            where = f"rules[{index}] ({rule.name})"
            if rule.name in seen:
                raise ValueError(
                    f"{where}.name: duplicate rule name (already used by rules[{seen[rule.name]}])"
                )
            seen[rule.name] = index
            action = rule.action
            kind = kinds.get(action.connection)
            if kind is None:
                known = ", ".join(sorted(kinds)) or "none configured"
                raise ValueError(
                    f"{where}.action.connection: no connection named {action.connection!r} "
                    f"(known: {known})"
                )
            if action.issue_type is not None and kind != "jira":
                raise ValueError(
                    f"{where}.action.issue_type: {action.connection} is {kind}; "
                    "a ServiceNow ticket type is given as table"
                )
            if action.table is not None and kind != "servicenow":
                raise ValueError(
                    f"{where}.action.table: {action.connection} is {kind}; "
                    "a Jira ticket type is given as issue_type"
                )
            conn = next(c for c in self.connections if c.name == action.connection)
            if action.table is not None and isinstance(conn, ServiceNowConnection):
                offered = [conn.table, *conn.tables]
                if action.table not in offered:
                    raise ValueError(
                        f"{where}.action.table: {action.table} is not one of "
                        f"{action.connection}'s tables ({', '.join(dict.fromkeys(offered))}); "
                        "add it to that connection's tables"
                    )
        return self

    @property
    def has_webhook_auth(self) -> bool:
        return self.webhook_secret is not None or self.signing_secret is not None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings()``: init kwargs, then the same sources as ``load_settings``, from
        ``os.environ``."""
        environ = dict(os.environ)
        return (init_settings, *_sources(settings_cls, environ, config_path(None, environ)))


# Keys a user may write in the file, per table: for "did you mean" hints on unknown keys.
_FILE_KEYS: dict[str, set[str]] = {
    "": set(Settings.model_fields) - _NOT_FROM_ENV,
    "platform": set(Platform.model_fields) - {"token"},
    "receiver": set(ReceiverSettings.model_fields),
    "sync": set(SyncSettings.model_fields),
    "secrets": set(SecretsSettings.model_fields),
    "jira": set(JiraConnection.model_fields) - {"token", "client_secret", "webhook_secret"},
    "servicenow": set(ServiceNowConnection.model_fields)
    - {"password", "client_secret", "webhook_secret"},
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


def config_path(path: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The file to read: ``path``, else ``ANOMALY_DESK_CONFIG``, else the default places."""
    named = environ.get(f"{ENV_PREFIX}CONFIG")
    return path or (Path(named) if named else None) or default_config_path()


def load_settings(
    path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    fresh_secrets: bool = False,
    resolve_secrets: bool = True,
) -> Settings:
    """Read the file (``path``, env ``ANOMALY_DESK_CONFIG``, or the default places) and env.

    ``env`` stands in for ``os.environ`` when given. Connection secrets are resolved here, so a
    ``Settings`` that loaded is ready to connect; ``fresh_secrets`` reads Vault past its cache.
    ``resolve_secrets=False`` leaves them unresolved, for jobs that never connect (a rules dry run).
    """
    environ = dict(os.environ if env is None else env)
    source = config_path(path, environ)
    where = _where(source)
    flags = InitSettingsSource(Settings, init_kwargs=_flag_values(overrides))
    variables, short, file, secrets = _sources(Settings, environ, source)
    try:
        settings = Settings(_build_sources=((flags, variables, short, file, secrets), {}))
    except ValidationError as exc:
        origins = _Origins(flags(), {**short.variables(), **variables.variables()})
        problems = "; ".join(_describe(error, origins) for error in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
    except SettingsError as exc:  # a source failed in a way of its own; never with a value
        raise ConfigError(f"{where}: {exc}") from None
    _check_urls(settings, where)
    if not resolve_secrets:
        return settings
    vault = VaultLookup(environ, settings.secrets.vault_ttl_s, fresh_secrets)
    settings.connections = _resolve_secrets(settings.connections, environ, where, vault)
    settings.platform = _resolve_platform(settings.platform, environ, where, vault)
    _resolve_receiver(settings, where, vault)
    return settings


@dataclass(frozen=True)
class SettingsLoader:
    """How running settings were loaded, to load them again: a reload (``SIGHUP``,
    ``POST /api/reload``) and re-reading secrets (from Vault: after a provider refused one,
    and every ``[secrets] vault_ttl_s``). ``env`` (None: ``os.environ`` at each load) is never
    shown in a repr."""

    path: Path | None = None
    overrides: Mapping[str, object] | None = None
    env: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)

    def load(self) -> Settings:
        """The file and the environment again; every Vault secret read anew."""
        return load_settings(self.path, self.overrides, self.env, fresh_secrets=True)

    def refresh_secrets(self, settings: Settings, only: Collection[str] | None = None) -> Settings:
        """``settings`` with their secrets read again from the references they hold (Vault past
        its cache): every secret, or those of ``only`` (connection names, ``PLATFORM_TABLE``,
        ``RECEIVER_TABLE``); the rest as it is."""
        environ = dict(os.environ if self.env is None else self.env)
        where = _where(settings.source)
        vault = VaultLookup(environ, settings.secrets.vault_ttl_s, fresh=True)
        names = None if only is None else set(only)
        fresh = settings.model_copy()
        fresh.connections = _resolve_secrets(
            [
                _unresolved(c) if names is None or c.name in names else c
                for c in settings.connections
            ],
            environ,
            where,
            vault,
            only=names,
        )
        if names is None or PLATFORM_TABLE in names:
            platform = settings.platform.model_copy(update={"token": None})
            fresh.platform = _resolve_platform(platform, environ, where, vault)
        if names is None or RECEIVER_TABLE in names:
            _resolve_receiver(fresh, where, vault)
        return fresh


def vault_backed(settings: Settings) -> list[str]:
    """What has a secret named by a ``*_vault`` reference: connection names, ``PLATFORM_TABLE``,
    ``RECEIVER_TABLE``."""
    owners: list[tuple[str, object]] = [(conn.name, conn) for conn in settings.connections]
    owners += [(PLATFORM_TABLE, settings.platform), (RECEIVER_TABLE, settings.receiver)]
    return [
        name
        for name, owner in owners
        if any(key.endswith("_vault") and value for key, value in vars(owner).items())
    ]


def _where(source: Path | None) -> str:
    return str(source) if source else "settings"


def _flag_values(overrides: Mapping[str, object] | None) -> dict[str, object]:
    """Command-line flags as settings: ``host`` and ``port`` are the receiver's; unset is None.
    Plain values of any kind: the settings models validate them."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    receiver = {key: given.pop(key) for key in ("host", "port") if key in given}
    return {**given, "receiver": receiver} if receiver else given


# ---------------------------------------------------------------------------------- sources


def _sources(
    settings_cls: type[BaseSettings], environ: Mapping[str, str], path: Path | None
) -> tuple[_EnvSource, _ShortEnvSource, _FileSource, _ReceiverSecretsSource]:
    """Below the flags, in precedence order: the environment (nested names, then the short
    ones), the file, the receiver's secrets."""
    where = _where(path)
    file = _FileSource(settings_cls, path)  # first: a bad file is the first thing reported
    return (
        _EnvSource(settings_cls, environ, where),
        _ShortEnvSource(settings_cls, environ),
        file,
        _ReceiverSecretsSource(settings_cls, environ, where),
    )


class _EnvSource(EnvSettingsSource):
    """``ANOMALY_DESK_<FIELD>`` / ``ANOMALY_DESK_<TABLE>__<KEY>`` from ``environ``, which is
    ``os.environ`` or the mapping a caller (a test) passed in its place."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], where: str
    ) -> None:
        super().__init__(settings_cls)  # prefix, delimiter, case from Settings.model_config
        self._environ = dict(environ)
        self._where = where
        # what EnvSettingsSource would have read from os.environ, read from the mapping instead
        self.env_vars = {
            self._apply_case_sensitive(name): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }

    def __call__(self) -> dict[str, Any]:  # pydantic-settings' signature
        data = super().__call__()
        return {key: value for key, value in data.items() if key not in _NOT_FROM_ENV}

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:  # a table or a list given as JSON that is not JSON
            names = sorted(name for key, name in self.variables().items() if key[0] == field_name)
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            raise ConfigError(
                f"{self._where}: {field_name} (from {', '.join(names) or 'the environment'}): "
                f"not valid JSON ({reason})"
            ) from None

    def variables(self) -> dict[KeyPath, str]:
        """Which variable set which key path (``("receiver", "port")``), for messages."""
        prefix = self._apply_case_sensitive(self.env_prefix)
        fields = set(self.settings_cls.model_fields) - _NOT_FROM_ENV
        found: dict[KeyPath, str] = {}
        for name, value in self._environ.items():
            key = self._apply_case_sensitive(name)
            if value == "" or not key.startswith(prefix):
                continue
            path = tuple(key[len(prefix) :].split(self.env_nested_delimiter or NESTED))
            if path[0] in fields:
                found[path] = name
        return found


class _ShortEnvSource(PydanticBaseSettingsSource):
    """``ANOMALY_DESK_HOST``, ``_PORT``, ``_ALLOWED_HOSTS``: names that do not follow the key
    path (``receiver.port``), so pydantic-settings cannot derive them; below the nested names."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = dict(environ)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work: the names are not per field

    def __call__(self) -> dict[str, Any]:  # pydantic-settings' signature
        data: dict[str, dict[str, str]] = {}
        for (table, key), name in self.variables().items():
            data.setdefault(table, {})[key] = self._environ[name]
        return data

    def variables(self) -> dict[KeyPath, str]:
        """The short variables set (not empty), by the key path they stand for."""
        return {
            path: f"{ENV_PREFIX}{suffix}"
            for suffix, path in SHORT_VARIABLES.items()
            if self._environ.get(f"{ENV_PREFIX}{suffix}")
        }


class _FileSource(TomlConfigSettingsSource):
    """The TOML file, read with our errors, refused when it holds a secret, and remembered as
    ``Settings.source``."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        self.path = path
        super().__init__(settings_cls, toml_file=path)

    def _read_files(self, files: Any, deep_merge: bool = False) -> dict[str, Any]:  # theirs
        if self.path is None:
            return {}
        data = _read_file(self.path)
        _check_file_shape(data, str(self.path))
        return data

    def __call__(self) -> dict[str, Any]:  # pydantic-settings' signature
        data = dict(super().__call__())
        if self.path is not None:
            data["source"] = self.path
        return data


class _ReceiverSecretsSource(PydanticBaseSettingsSource):
    """``webhook_secret`` / ``signing_secret``: from the variable ``receiver.*_secret_env``
    names (whichever source set that), else ``ANOMALY_DESK_WEBHOOK_SECRET`` /
    ``_SIGNING_SECRET``; trimmed; a named variable must be set; a signing key must look like
    one. Last but for the defaults: it reads what the sources above it decided."""

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str], where: str
    ) -> None:
        super().__init__(settings_cls)
        self._environ = dict(environ)
        self._where = where

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:  # pydantic-settings' signature
        receiver = self.current_state.get("receiver")
        named = receiver if isinstance(receiver, dict) else {}
        data: dict[str, str] = {}
        for default in ("WEBHOOK_SECRET", "SIGNING_SECRET"):
            key = default.lower()
            variable = named.get(f"{key}_env")
            if named.get(f"{key}_vault"):  # read from Vault once the settings are validated
                others = [f"receiver.{key}_env"] if variable else []
                if (self._environ.get(f"{ENV_PREFIX}{default}") or "").strip():
                    others.append(f"{ENV_PREFIX}{default}")
                if others:
                    raise ConfigError(
                        f"{self._where}: receiver.{key}_vault, {', '.join(others)}: "
                        "set one of them, not both"
                    )
                continue
            value = _secret(
                self._environ, variable if isinstance(variable, str) else None, default, self._where
            )
            if value is not None:
                data[key] = value
        return data


# ---------------------------------------------------------------------------------- the file


def _regular_text(source: Path) -> str:
    """A regular file's text, up to ``MAX_CONFIG_BYTES``. A FIFO or a device is refused before
    it is opened (reading one blocked a reload forever, holding its lock)."""
    mode = source.stat().st_mode
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{source}: not a regular file")
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped after the stat
            raise ConfigError(f"{source}: not a regular file")
        data = fh.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: over {MAX_CONFIG_BYTES:,} bytes; not a configuration file")
    return data.decode("utf-8")


MAX_CONFIG_BYTES = 1 << 20  # a configuration file is kilobytes; anything bigger is a mistake


def _read_file(source: Path) -> dict[str, Any]:  # tomllib's table
    try:
        text = _regular_text(source)
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


def _check_file_shape(data: Mapping[str, object], where: str) -> None:
    """Refuse secrets written into the file and tables of the wrong kind, before validation.

    Secrets are refused here, not by the models, so no validator ever sees the value.
    """
    for table in TABLES:
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{where}: {table}: must be a table ([{table}])")
    if "connections" in data and not isinstance(data["connections"], list):
        raise ConfigError(f"{where}: connections: must be an array of tables ([[connections]])")
    receiver = data.get("receiver", {})
    assert isinstance(receiver, dict)  # checked just above
    for forbidden in ("webhook_secret", "signing_secret"):
        if forbidden in data or forbidden in receiver:
            raise ConfigError(
                f"{where}: {forbidden}: secrets are not kept in the config file; "
                f"set {ENV_PREFIX}{forbidden.upper()} or name a variable with "
                f"receiver.{forbidden}_env (or a Vault secret with receiver.{forbidden}_vault)"
            )
    platform = data.get("platform", {})
    assert isinstance(platform, dict)  # checked just above
    if "token" in platform:
        raise ConfigError(
            f"{where}: platform: token: secrets are not kept in the config file; name an "
            "environment variable with token_env (or an OS keyring service with token_keyring, "
            "or a Vault secret with token_vault)"
        )
    url = platform.get("url")
    if isinstance(url, str) and "@" in urlsplit(url).netloc:
        raise ConfigError(
            f"{where}: platform: url: credentials in the URL are not allowed; use token_env or "
            "token_keyring (the URL is not repeated here)"
        )
    seen: dict[str, int] = {}
    connections = data.get("connections", [])
    assert isinstance(connections, list)  # checked just above
    for index, conn in enumerate(connections):
        if not isinstance(conn, dict):
            continue  # the model says what is wrong with it
        label = _label(index, conn.get("name"))
        field = SECRET_FIELDS.get(str(conn.get("provider")), ("token", ""))[0]
        for key in ("token", "password", "client_secret", "webhook_secret"):
            if key in conn:
                known = conn.get("provider") in SECRET_FIELDS and key in ("token", "password")
                theirs = field if known else key
                raise ConfigError(
                    f"{where}: {label}: {key}: secrets are not kept in the config file; name "
                    f"an environment variable with {theirs}_env (or an OS keyring service "
                    f"with {theirs}_keyring, or a Vault secret with {theirs}_vault)"
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


class _Origins:
    """Which environment variable a key's value came from, unless a flag overrode it."""

    def __init__(self, flags: Mapping[str, object], variables: dict[KeyPath, str]) -> None:
        self.flagged = set(_leaf_paths(flags))
        self.variables = variables

    def of(self, loc: KeyPath) -> str | None:
        if not loc or any(loc[: len(path)] == path for path in self.flagged):
            return None
        for end in range(len(loc), 0, -1):  # the variable may hold a whole table as JSON
            if loc[:end] in self.variables:
                return self.variables[loc[:end]]
        deeper = sorted(name for path, name in self.variables.items() if path[: len(loc)] == loc)
        return ", ".join(deeper) or None  # variables that built the value (…__0__URL for a list)


def _leaf_paths(data: Mapping[str, object], above: KeyPath = ()) -> list[KeyPath]:
    paths: list[KeyPath] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            paths += _leaf_paths(value, (*above, str(key)))
        else:
            paths.append((*above, str(key)))
    return paths


def _describe(error: Any, origins: _Origins) -> str:
    """One pydantic error as ``key.path: message``, never with the offending value."""
    loc = list(error["loc"])
    table = ""
    # Discriminated unions put the tag in the path: connections.0.jira.url -> connections[0].url
    if len(loc) >= 3 and loc[0] == "connections" and loc[2] in PROVIDERS:
        table = str(loc.pop(2))
    elif len(loc) >= 2 and loc[0] in TABLES:
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
    var = origins.of(tuple(str(p) for p in loc))
    if var:
        path += f" (from {var})"
    return f"{path}: {message}" if path else message


# ---------------------------------------------------------------------------------- secrets


def _secret(env: Mapping[str, str], named: str | None, default: str, where: str) -> str | None:
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
    connections: list[Connection],
    env: Mapping[str, str],
    where: str,
    vault: VaultLookup,
    only: Collection[str] | None = None,
) -> list[Connection]:
    """Every connection with its secrets read; all problems reported at once. With ``only``,
    those connections' (the others are kept as they are)."""
    resolved: list[Connection] = []
    problems: list[str] = []
    for index, conn in enumerate(connections):
        if only is not None and conn.name not in only:
            resolved.append(conn)
            continue
        try:
            resolved.append(_resolve(conn, index, env, vault))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return resolved


def _unresolved(conn: Connection) -> Connection:
    """``conn`` as the file describes it: its resolved secrets dropped, its references kept."""
    names = ("token", "password", "client_secret", "webhook_secret")
    secrets = {name: None for name in names if name in type(conn).model_fields}
    return conn.model_copy(update=secrets)


def _resolve(
    conn: Connection, index: int, env: Mapping[str, str], vault: VaultLookup
) -> Connection:
    """The secrets ``conn.auth`` needs (``secret_fields``), each from the one place the file
    names, and the hint webhooks' secret when one is named."""
    label = _label(index, conn.name)
    update: dict[str, object] = {}
    for field_name in conn.secret_fields():
        user = conn.keyring_user(field_name)
        value = _named_secret(conn, field_name, user, label, env, vault)
        if value is None:
            needed = f" (auth = {conn.auth!r})" if conn.auth != "basic" else ""
            raise ConfigError(
                f"{label}: {field_name}_env: no {field_name} configured{needed}; name an "
                f"environment variable with {field_name}_env or an OS keyring service with "
                f"{field_name}_keyring (or a Vault secret with {field_name}_vault)"
            )
        update[field_name] = SecretStr(value)
    if conn.webhook_secret is not None:  # only a variable can have set it: the file refuses it
        raise ConfigError(
            f"{label}: webhook_secret: name a variable with webhook_secret_env (or a Vault "
            "secret with webhook_secret_vault)"
        )
    hook = _named_secret(conn, "webhook_secret", "", label, env, vault)
    if hook is not None:
        update["webhook_secret"] = SecretStr(hook)
    return conn.model_copy(update=update)


def _named_secret(
    owner: object,
    name: str,
    user: str,
    label: str,
    env: Mapping[str, str],
    vault: VaultLookup,
) -> str | None:
    """Secret ``name`` of ``owner`` from the one place it names (``<name>_env``,
    ``<name>_keyring``, ``<name>_vault``); None when it names none."""
    named = [
        (source, ref)
        for source in SOURCES
        if isinstance(ref := getattr(owner, f"{name}_{source}", None), str) and ref
    ]
    if len(named) > 1:
        keys = ", ".join(f"{name}_{source}" for source, _ in named)
        again = "not both" if len(named) == 2 else "only one"
        raise ConfigError(f"{label}: {keys}: set one of them, {again}")
    if not named:
        return None
    source, ref = named[0]
    key = f"{name}_{source}"
    if source == "env":
        return _from_env(env, ref, label, key)
    if source == "keyring":
        return _from_keyring(ref, user, label, key)
    return _from_vault(vault, ref, label, key)


def _resolve_platform(
    platform: Platform, env: Mapping[str, str], where: str, vault: VaultLookup
) -> Platform:
    """The platform's API token read from the variable, keyring entry (the keyring username is
    the platform's ``name``) or Vault secret it names; what needs a token (``write_back =
    true``, ``import_on_start``) refused without one, and a token refused without a URL."""
    label = "platform"
    ways = "name an environment variable with token_env or an OS keyring service with token_keyring"
    if platform.token is not None:  # only a variable can have set it: the file refuses it
        raise ConfigError(
            f"{where}: {label}: token: the token is not given as a value (from the "
            f"environment); {ways}"
        )
    try:
        token = _named_secret(platform, "token", platform.name, label, env, vault)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if token is None:
        needs = [key for key in ("write_back", "import_on_start") if getattr(platform, key)]
        if needs:
            raise ConfigError(
                f"{where}: {label}: {', '.join(needs)}: needs the platform's API token; {ways}"
            )
        return platform
    if not platform.url:
        raise ConfigError(
            f"{where}: {label}: url: missing; a token is configured and the platform's API is "
            "called at the platform's url"
        )
    return platform.model_copy(update={"token": SecretStr(token)})


def _resolve_receiver(settings: Settings, where: str, vault: VaultLookup) -> None:
    """The receiver's secrets named by ``receiver.*_vault``, read into ``settings`` (those from
    variables were read by ``_ReceiverSecretsSource``)."""
    for name in RECEIVER_SECRETS:
        key = f"{name}_vault"
        reference = getattr(settings.receiver, key)
        if not reference:
            continue
        try:
            value = _from_vault(vault, reference, "receiver", key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if name == "signing_secret":
            _check_signing_secret(value, f"receiver.{key} ({reference})")
        setattr(settings, name, SecretStr(value))


def _from_vault(vault: VaultLookup, reference: str, label: str, key: str) -> str:
    try:
        return vault.read(reference)
    except VaultError as exc:  # names the reference (when it is one), never a value
        raise ConfigError(f"{label}: {key}: {exc}") from None


def _from_env(env: Mapping[str, str], name: str, label: str, key: str) -> str:
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
