"""Connection settings for one Jira Cloud site or ServiceNow instance.

Secrets are held as ``SecretStr`` (masked in every repr) and only ever come from the environment,
the OS keyring or a vault; the config file names where to find them (``token_env``), never the
value.

How a connection authenticates is its ``auth``:

* ``basic`` (the default): Jira ``email`` + API ``token``; ServiceNow ``username`` + ``password``.
* ``scoped_token`` (Jira): ``email`` + a scoped API token, as basic auth against
  ``{api_url}/ex/jira/{cloud_id}`` (the cloud id read from ``{url}/_edge/tenant_info`` unless
  configured).
* ``oauth_client_credentials``: ``client_id`` + client secret for a bearer token from
  ``{auth_url}/oauth/token`` (Jira, the same API base as scoped tokens) or
  ``{url}/oauth_token.do`` (ServiceNow).
* ``oauth_password`` (ServiceNow): the password grant with ``client_id`` + client secret and
  ``username`` + ``password``; the refresh token renews it.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from anomaly_desk.core.templates import TemplateSet

Direction = Literal["off", "to_ticket", "from_ticket", "both"]
AuthMode = Literal["basic", "scoped_token", "oauth_client_credentials", "oauth_password"]
OAUTH_MODES: frozenset[AuthMode] = frozenset({"oauth_client_credentials", "oauth_password"})
# A secret field -> the ways the file may name it (the vault one is resolved by ``secrets``).
SECRET_SOURCES = ("env", "keyring", "vault")
TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")


def _url_value(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a local sandbox)")
    return value.rstrip("/")


class _Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    url: str
    timeout: float = 20.0  # seconds, per request
    verify_tls: bool | str = True  # False, True, or a CA bundle path (the sandbox's --tls cert)

    # Two-way sync, each direction opt-in (the defaults are the one-way behaviour).
    status: Direction = "to_ticket"  # status notes to tickets; from_ticket: ticket states count
    comments: Direction = "to_ticket"  # from_ticket: people's comments on tickets come back
    fan_out_ticket_comments: bool = False  # a comment from one ticket goes to the others too
    on_ticket_done: str | None = None  # "archive:Resolved": a done ticket archives the anomaly
    on_anomaly_archived: Literal["note", "transition"] = "note"  # transition: move the ticket
    on_recurrence: Literal["comment", "reopen", "new_ticket"] = "comment"
    templates: TemplateSet | None = None  # ticket and note texts (core/templates.py)
    poll_s: float = Field(60.0, ge=0)  # read changed tickets this often (0: never)
    webhook_secret_env: str | None = None  # inbound hint webhooks: the HMAC secret's variable
    webhook_secret_vault: str | None = None  # …or its Vault reference (mount/path#key)
    webhook_secret: SecretStr | None = None  # resolved at load time; never written anywhere

    # Authentication (see the module doc); each provider takes some of the modes.
    AUTH_MODES: ClassVar[tuple[AuthMode, ...]] = ("basic",)
    auth: AuthMode = "basic"
    client_id: str | None = None  # OAuth modes
    client_secret_env: str | None = None
    client_secret_keyring: str | None = None  # keyring service; the username is ``client_id``
    client_secret_vault: str | None = None  # "secret/anomaly-desk/jira#client_secret"
    client_secret: SecretStr | None = None  # resolved at load time; never written anywhere

    @field_validator("auth")
    @classmethod
    def _auth_mode(cls, value: AuthMode) -> AuthMode:
        if value not in cls.AUTH_MODES:
            provider = cls.model_fields["provider"].default
            modes = ", ".join(repr(mode) for mode in cls.AUTH_MODES)
            raise ValueError(f"{value!r} is not available for {provider}; it takes {modes}")
        return value

    @model_validator(mode="after")
    def _auth_needs(self) -> _Connection:
        """What an OAuth mode needs besides the secrets (they are checked when resolved)."""
        if self.auth not in OAUTH_MODES:
            return self
        if not (self.client_id or "").strip():
            raise ValueError(
                f"client_id: missing; auth = {self.auth!r} needs client_id and a client secret "
                "(client_secret_env, client_secret_keyring or client_secret_vault)"
            )
        named = [getattr(self, f"client_secret_{source}") for source in SECRET_SOURCES]
        if not any(named) and self.client_secret is None:
            raise ValueError(
                f"client_secret_env: missing; auth = {self.auth!r} needs the client secret: name "
                "it with client_secret_env, client_secret_keyring or client_secret_vault"
            )
        return self

    @property
    def uses_oauth(self) -> bool:
        return self.auth in OAUTH_MODES

    def secret_fields(self) -> tuple[str, ...]:
        """The secrets this connection's ``auth`` needs, resolved at load time (each named by
        ``<field>_env``, ``<field>_keyring`` or ``<field>_vault``)."""
        raise NotImplementedError

    def keyring_user(self, field: str) -> str:
        """The keyring username for a secret: ``client_id`` for the client secret, else the
        connection's account (``email`` / ``username``)."""
        raise NotImplementedError

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "platform":
            raise ValueError("'platform' names the platform's own queue; choose another name")
        return value

    @field_validator("on_ticket_done")
    @classmethod
    def _done_action(cls, value: str | None) -> str | None:
        if value is None:
            return None
        action, _, status = value.partition(":")
        archived = ("Resolved", "Duplicate", "Invalid", "Discarded")
        if action != "archive" or status not in archived:
            raise ValueError(f"must be archive:<status>, the status one of {', '.join(archived)}")
        return value

    def takes(self, field: Literal["status", "comments"]) -> bool:
        """Whether changes of ``field`` made on the ticket come back to the anomaly."""
        return getattr(self, field) in ("from_ticket", "both")

    def gives(self, field: Literal["status", "comments"]) -> bool:
        """Whether changes of ``field`` made here go to the ticket."""
        return getattr(self, field) in ("to_ticket", "both")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _url_value(value)


class JiraConnection(_Connection):
    AUTH_MODES: ClassVar[tuple[AuthMode, ...]] = (
        "basic",
        "scoped_token",
        "oauth_client_credentials",
    )
    provider: Literal["jira"] = "jira"
    email: str
    token_env: str | None = None
    token_keyring: str | None = None  # keyring service name; the username is ``email``
    token_vault: str | None = None  # "secret/anomaly-desk/jira#api_token"
    token: SecretStr | None = None  # resolved at load time; never written anywhere
    # scoped_token / oauth_client_credentials: the API at {api_url}/ex/jira/{cloud_id}
    api_url: str = "https://api.atlassian.com"
    auth_url: str = "https://auth.atlassian.com"  # oauth_client_credentials: {auth_url}/oauth/token
    cloud_id: str | None = None  # None: read from {url}/_edge/tenant_info
    project: str = "DQ"
    issue_type: str = "Task"
    label: str = "anomaly-desk"  # added to every issue we create, with ``anomaly-<id>``
    done_transition: str | None = None  # the transition to take when several lead to done
    resolution: str = "Done"  # sent with that transition when its screen has a resolution

    @field_validator("api_url", "auth_url")
    @classmethod
    def _auth_urls(cls, value: str) -> str:
        return _url_value(value)

    @field_validator("cloud_id")
    @classmethod
    def _cloud_id(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value and not all(c.isalnum() or c == "-" for c in value):
            raise ValueError("must be the site's cloud id (letters, digits and dashes)")
        return value or None

    def secret_fields(self) -> tuple[str, ...]:
        return ("client_secret",) if self.uses_oauth else ("token",)

    def keyring_user(self, field: str) -> str:
        return self.client_id or "" if field == "client_secret" else self.email


class ServiceNowConnection(_Connection):
    AUTH_MODES: ClassVar[tuple[AuthMode, ...]] = (
        "basic",
        "oauth_client_credentials",
        "oauth_password",
    )
    provider: Literal["servicenow"] = "servicenow"
    # The account the desk acts as (with client credentials: the OAuth application user); its
    # work notes are recognised as ours by this name.
    username: str
    password_env: str | None = None
    password_keyring: str | None = None
    password_vault: str | None = None
    password: SecretStr | None = None
    table: str = "incident"  # the default ticket type: a table extending ``task``
    # the ticket types the create form offers (its ``table`` is offered too)
    tables: list[str] = Field(default_factory=lambda: ["incident", "problem", "change_request"])
    close_code: str = "Solution provided"  # with state 6 (Resolved) when the anomaly is archived

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        return _table_identifier(value)

    @field_validator("tables")
    @classmethod
    def _table_names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_table_identifier(name) for name in value))

    def secret_fields(self) -> tuple[str, ...]:
        if self.auth == "oauth_client_credentials":
            return ("client_secret",)
        if self.auth == "oauth_password":
            return ("password", "client_secret")
        return ("password",)

    def keyring_user(self, field: str) -> str:
        return self.client_id or "" if field == "client_secret" else self.username


def _table_identifier(value: str) -> str:
    """A ServiceNow table name goes into URLs and queries: letters, digits and ``_`` only."""
    name = value.strip()
    if not TABLE_NAME.fullmatch(name):
        raise ValueError(f"not a ServiceNow table name: {value!r} (letters, digits and _)")
    return name


Connection = Annotated[JiraConnection | ServiceNowConnection, Field(discriminator="provider")]


class Platform(BaseModel):
    """The data-quality platform: its name appears in every note; with a token, its API is used.

    The API (``{url}/api``) takes a bearer token, named like a connection's secret: ``token_env``
    (an environment variable), ``token_keyring`` (an OS keyring service; the username is
    ``name``) or ``token_vault`` (a Vault reference). ``token`` is resolved at load time and
    never written anywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Qualytics"
    url: str | None = None  # anomaly links: {url}/anomalies/{id} when a payload has none
    token_env: str | None = None
    token_keyring: str | None = None
    token_vault: str | None = None  # "secret/anomaly-desk/platform#token"
    token: SecretStr | None = None  # resolved at load time; never written anywhere
    # Acknowledge, archive and comment on the platform as the desk does; None: on with a token.
    write_back: bool | None = None
    import_on_start: bool = False  # page through the platform's open anomalies at start-up
    timeout: float = Field(20.0, gt=0)  # seconds, per API request
    verify_tls: bool | str = True  # False, True, or a CA bundle path

    @property
    def has_api(self) -> bool:
        """Whether the platform's API can be called: a URL and a token."""
        return bool(self.url) and self.token is not None

    @property
    def writes_back(self) -> bool:
        """``write_back`` as it takes effect: unset means on when a token is configured."""
        return self.has_api if self.write_back is None else self.write_back and self.has_api
