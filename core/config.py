"""Settings: ``anomaly-desk.toml`` plus ``ANOMALY_DESK_*`` environment variables.

Precedence: command-line flags, then the environment, then the file, then defaults. Secrets are
never read from the file: it names an environment variable (``*_env``) instead.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from core.connections import Connection, Platform
from core.models import error_path

APP = "anomaly-desk"
CONFIG_NAME = "anomaly-desk.toml"
ENV_PREFIX = "ANOMALY_DESK_"


class ConfigError(Exception):
    """The configuration is wrong; the message names the file and the key."""


class ReceiverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0)
    webhook_secret_env: str | None = None  # env var holding the shared secret
    signing_secret_env: str | None = None  # env var holding a Standard Webhooks whsec_ key


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP))
    platform: Platform = Field(default_factory=Platform)
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    connections: list[Connection] = Field(default_factory=list)
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
    """Read the file (``path``, env ``ANOMALY_DESK_CONFIG``, or the default places) and env."""
    env = dict(os.environ if env is None else env)
    explicit = path or (
        Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(f"{ENV_PREFIX}CONFIG") else None
    )
    source = explicit or default_config_path()
    data: dict[str, Any] = {}
    if source is not None:
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        for forbidden in ("webhook_secret", "signing_secret"):
            if forbidden in data or forbidden in data.get("receiver", {}):
                raise ConfigError(
                    f"{source}: {forbidden}: secrets are not kept in the config file; "
                    f"set {ENV_PREFIX}{forbidden.upper()} or name a variable with "
                    f"receiver.{forbidden}_env"
                )
    receiver = data.setdefault("receiver", {})
    if env.get(f"{ENV_PREFIX}DATA_DIR"):
        data["data_dir"] = env[f"{ENV_PREFIX}DATA_DIR"]
    for key in ("host", "port"):
        if env.get(f"{ENV_PREFIX}{key.upper()}"):
            receiver[key] = env[f"{ENV_PREFIX}{key.upper()}"]
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("host", "port"):
            receiver[key] = value
        else:
            data[key] = value
    where = str(source) if source else "settings"
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
        problems = "; ".join(f"{error_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
    return settings


def _secret(env: dict[str, str], named: str | None, default: str, where: str) -> str | None:
    if named:
        if not env.get(named):
            raise ConfigError(
                f"{where}: receiver.{default.lower()}_env names {named}, which is unset"
            )
        return env[named]
    return env.get(f"{ENV_PREFIX}{default}") or None
