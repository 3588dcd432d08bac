"""Connection settings for one Jira Cloud site or ServiceNow instance.

Secrets are held as ``SecretStr`` (masked in every repr) and only ever come from the environment
or the OS keyring; the config file names where to find them (``token_env``), never the value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    url: str
    timeout: float = 20.0  # seconds, per request
    verify_tls: bool | str = True  # False, True, or a CA bundle path (the sandbox's --tls cert)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local sandbox)")
        return value.rstrip("/")


class JiraConnection(_Connection):
    provider: Literal["jira"] = "jira"
    email: str
    token_env: str | None = None
    token_keyring: str | None = None  # keyring service name; the username is ``email``
    token: SecretStr | None = None  # resolved at load time; never written anywhere
    project: str = "DQ"
    issue_type: str = "Task"
    label: str = "anomaly-desk"  # added to every issue we create, with ``anomaly-<id>``


class ServiceNowConnection(_Connection):
    provider: Literal["servicenow"] = "servicenow"
    username: str
    password_env: str | None = None
    password_keyring: str | None = None
    password: SecretStr | None = None
    table: str = "incident"


Connection = Annotated[JiraConnection | ServiceNowConnection, Field(discriminator="provider")]


class Platform(BaseModel):
    """The data-quality platform whose name appears in every note."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Qualytics"
    url: str | None = None  # anomaly links: {url}/anomalies/{id} when a payload has none
