"""Connection settings for one Jira Cloud site or ServiceNow instance.

Secrets are held as ``SecretStr`` (masked in every repr) and only ever come from the environment
or the OS keyring; the config file names where to find them (``token_env``), never the value.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Direction = Literal["off", "to_ticket", "from_ticket", "both"]


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
    poll_s: float = Field(60.0, ge=0)  # read changed tickets this often (0: never)
    webhook_secret_env: str | None = None  # inbound hint webhooks: the HMAC secret's variable
    webhook_secret: SecretStr | None = None  # resolved at load time; never written anywhere

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
    done_transition: str | None = None  # the transition to take when several lead to done
    resolution: str = "Done"  # sent with that transition when its screen has a resolution


class ServiceNowConnection(_Connection):
    provider: Literal["servicenow"] = "servicenow"
    username: str
    password_env: str | None = None
    password_keyring: str | None = None
    password: SecretStr | None = None
    table: str = "incident"
    close_code: str = "Solution provided"  # with state 6 (Resolved) when the anomaly is archived


Connection = Annotated[JiraConnection | ServiceNowConnection, Field(discriminator="provider")]


class Platform(BaseModel):
    """The data-quality platform: its name appears in every note; with a token, its API is used.

    The API (``{url}/api``) takes a bearer token, named like a connection's secret: ``token_env``
    (an environment variable) or ``token_keyring`` (an OS keyring service; the username is
    ``name``). ``token`` is resolved at load time and never written anywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Qualytics"
    url: str | None = None  # anomaly links: {url}/anomalies/{id} when a payload has none
    token_env: str | None = None
    token_keyring: str | None = None
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
