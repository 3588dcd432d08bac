"""Configuration: the issue's TOML shape, precedence, secrets by reference, errors that name keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from anomaly_desk.core.config import ConfigError, Settings, load_settings
from anomaly_desk.core.connections import JiraConnection, ServiceNowConnection

ISSUE_TOML = """\
[platform]
name = "Qualytics"
url = "https://acme.qualytics.io"       # anomaly links: {url}/anomalies/{id} when a payload has none

[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_env = "JIRA_API_TOKEN"
project = "DQ"
issue_type = "Task"

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "https://acme.service-now.com"
username = "qualytics_integration"
password_env = "SNOW_PASSWORD"
"""
JIRA_TOKEN = "jira-token-3f9a1c77e2"
SNOW_PASSWORD = "snow-pass-b81d0e44aa"
SECRETS = {"JIRA_API_TOKEN": JIRA_TOKEN, "SNOW_PASSWORD": SNOW_PASSWORD}

JIRA = """
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
"""
SNOW = """
[[connections]]
name = "servicenow"
provider = "servicenow"
url = "https://acme.service-now.com"
username = "qualytics_integration"
"""


def write(tmp_path: Path, text: str, name: str = "anomaly-desk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, env: dict[str, str] | None = None, **kw: Any) -> str:
    """The ConfigError message; also proves that no secret from ``env`` leaked into it."""
    env = {**SECRETS, **(env or {})}
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env, **kw)
    message = str(info.value)
    for secret in (JIRA_TOKEN, SNOW_PASSWORD):
        assert secret not in message
    assert str(path) in message
    return message


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory stand-in for the OS keyring (the OS one is the test double's target)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


class LockedKeyring(MemoryKeyring):
    """A backend that fails the way a locked desktop keyring does."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")


@pytest.fixture
def use_keyring() -> Iterator[Any]:
    """Install a keyring backend for one test and put the previous one back."""
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


# --------------------------------------------------------------------------- loads


def test_issue_toml_shape_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, ISSUE_TOML)
    settings = load_settings(path, env=dict(SECRETS))

    assert settings.source == path
    assert settings.platform.name == "Qualytics"
    assert settings.platform.url == "https://acme.qualytics.io"
    jira, snow = settings.connections
    assert isinstance(jira, JiraConnection)
    assert (jira.name, jira.url, jira.email) == (
        "jira",
        "https://acme.atlassian.net",
        "bot@acme.com",
    )
    assert (jira.project, jira.issue_type, jira.token_env) == ("DQ", "Task", "JIRA_API_TOKEN")
    assert jira.token is not None
    assert jira.token.get_secret_value() == JIRA_TOKEN
    assert isinstance(snow, ServiceNowConnection)
    assert (snow.name, snow.url, snow.username) == (
        "servicenow",
        "https://acme.service-now.com",
        "qualytics_integration",
    )
    assert snow.password is not None
    assert snow.password.get_secret_value() == SNOW_PASSWORD


def test_secrets_never_appear_in_repr_str_or_dumps(tmp_path: Path) -> None:
    path = write(tmp_path, ISSUE_TOML + '\n[receiver]\nwebhook_secret_env = "HOOK"\n')
    settings = load_settings(path, env={**SECRETS, "HOOK": "hook-secret-91c3d5"})
    assert settings.webhook_secret is not None
    assert settings.has_webhook_auth
    shown = [
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
        *(repr(c) for c in settings.connections),
    ]
    for text in shown:
        for secret in (JIRA_TOKEN, SNOW_PASSWORD, "hook-secret-91c3d5"):
            assert secret not in text
    assert "**********" in settings.model_dump_json()


def test_config_file_from_env_variable_and_explicit_path_wins(tmp_path: Path) -> None:
    by_env = write(tmp_path, '[platform]\nname = "FromEnv"\n', "env.toml")
    explicit = write(tmp_path, '[platform]\nname = "Explicit"\n', "explicit.toml")
    env = {"ANOMALY_DESK_CONFIG": str(by_env)}
    assert load_settings(env=env).platform.name == "FromEnv"
    assert load_settings(explicit, env=env).platform.name == "Explicit"


def test_default_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, ISSUE_TOML)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env=dict(SECRETS))
    assert settings.source == tmp_path / "anomaly-desk.toml"
    assert [c.name for c in settings.connections] == ["jira", "servicenow"]


def test_precedence_flags_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'data_dir = "{tmp_path / "file-data"}"\n[receiver]\nhost = "127.0.0.2"\nport = 9000\n',
    )
    from_file = load_settings(path, env={})
    assert (from_file.receiver.host, from_file.receiver.port) == ("127.0.0.2", 9000)
    assert from_file.data_dir == tmp_path / "file-data"
    assert from_file.receiver.max_body_bytes == 1_048_576  # default

    env = {"ANOMALY_DESK_PORT": "9100", "ANOMALY_DESK_DATA_DIR": str(tmp_path / "env-data")}
    from_env = load_settings(path, env=env)
    assert from_env.receiver.port == 9100
    assert from_env.receiver.host == "127.0.0.2"  # the file still counts where env is silent
    assert from_env.data_dir == tmp_path / "env-data"

    flags = load_settings(
        path, env=env, overrides={"port": 9200, "data_dir": tmp_path / "flag-data", "host": None}
    )
    assert flags.receiver.port == 9200
    assert flags.receiver.host == "127.0.0.2"  # a flag left unset does not override
    assert flags.data_dir == tmp_path / "flag-data"


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    message = load_error(path, env={"ANOMALY_DESK_PORT": "eighty"})
    assert "receiver.port (from ANOMALY_DESK_PORT): Input should be a valid integer" in message


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "key_path", "hint"),
    [
        ("colour = 1\n", "colour", None),
        ('[platform]\nname = "Q"\nulr = "https://x"\n', "platform.ulr", "url"),
        ("[receiver]\nprot = 1\n", "receiver.prot", "port"),
        (
            JIRA.replace("provider", 'tokn_env = "T"\nprovider'),
            "connections[0].tokn_env",
            "token_env",
        ),
        (JIRA + SNOW + 'pasword_env = "P"\n', "connections[1].pasword_env", "password_env"),
    ],
    ids=["top-level", "platform", "receiver", "jira-connection", "servicenow-connection"],
)
def test_unknown_key_is_an_error_naming_its_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    key_path: str,
    hint: str | None,
) -> None:
    write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    message = load_error(Path("anomaly-desk.toml"))
    assert message.startswith(f"anomaly-desk.toml: {key_path}: Extra inputs are not permitted")
    if hint:
        assert f"did you mean {hint!r}" in message


def test_unknown_keys_are_all_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "a = 1\n[receiver]\nb = 2\n")
    message = load_error(path)
    assert "a: Extra inputs are not permitted" in message
    assert "receiver.b: Extra inputs are not permitted" in message


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("text", "label", "key", "use"),
    [
        (JIRA + f'token = "{JIRA_TOKEN}"\n', "connections[0] (jira)", "token", "token_env"),
        (
            JIRA + 'token_env = "JIRA_API_TOKEN"\n' + SNOW + f'password = "{SNOW_PASSWORD}"\n',
            "connections[1] (servicenow)",
            "password",
            "password_env",
        ),
    ],
    ids=["jira-token", "servicenow-password"],
)
def test_secret_written_in_the_file_is_refused(
    tmp_path: Path, text: str, label: str, key: str, use: str
) -> None:
    message = load_error(write(tmp_path, text))
    assert f"{label}: {key}: secrets are not kept in the config file" in message
    assert use in message


def test_credentials_in_a_url_are_refused_without_repeating_them(tmp_path: Path) -> None:
    text = JIRA.replace("https://acme", "https://bot:hunter2-secret@acme")
    message = load_error(write(tmp_path, text + 'token_env = "JIRA_API_TOKEN"\n'))
    assert "connections[0] (jira): url: credentials in the URL are not allowed" in message
    assert "hunter2-secret" not in message


def test_receiver_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, '[receiver]\nwebhook_secret = "s3cr3t-hook"\n'))
    assert "webhook_secret: secrets are not kept in the config file" in message
    assert "s3cr3t-hook" not in message


def test_connection_without_a_secret_reference_names_the_key(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, JIRA + SNOW + 'password_env = "SNOW_PASSWORD"\n'))
    assert "connections[0] (jira): token_env: no token configured" in message
    assert "token_keyring" in message


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_env_secret_unset_or_empty_names_connection_key_and_variable(
    tmp_path: Path, value: str | None
) -> None:
    path = write(tmp_path, ISSUE_TOML)
    env = {"JIRA_API_TOKEN": JIRA_TOKEN} | ({"SNOW_PASSWORD": value} if value is not None else {})
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert message == (
        f"{path}: connections[1] (servicenow): password_env: "
        "environment variable SNOW_PASSWORD is unset or empty"
    )
    assert JIRA_TOKEN not in message


def test_every_missing_secret_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ISSUE_TOML), env={})
    message = str(info.value)
    assert "connections[0] (jira): token_env: environment variable JIRA_API_TOKEN" in message
    assert "connections[1] (servicenow): password_env: environment variable SNOW_PASSWORD" in (
        message
    )


def test_env_name_that_looks_pasted_is_not_repeated(tmp_path: Path) -> None:
    pasted = "ATATT3xFfGF0-abc=def"
    message = load_error(write(tmp_path, JIRA + f'token_env = "{pasted}"\n'))
    assert "connections[0] (jira): token_env: must be the name of an environment variable" in (
        message
    )
    assert pasted not in message


def test_env_and_keyring_together_is_an_error(tmp_path: Path) -> None:
    text = JIRA + 'token_env = "JIRA_API_TOKEN"\ntoken_keyring = "jira-prod"\n'
    message = load_error(write(tmp_path, text))
    assert "connections[0] (jira): token_env, token_keyring: set one of them, not both" in message


def test_keyring_secrets_resolve_with_the_connection_username(
    tmp_path: Path, use_keyring: Any
) -> None:
    ring = MemoryKeyring()
    ring.set_password("jira-prod", "bot@acme.com", "kr-jira-7d1e")
    ring.set_password("snow-prod", "qualytics_integration", "kr-snow-0a2b")
    use_keyring(ring)
    text = JIRA + 'token_keyring = "jira-prod"\n' + SNOW + 'password_keyring = "snow-prod"\n'
    settings = load_settings(write(tmp_path, text), env={})
    jira, snow = settings.connections
    assert isinstance(jira, JiraConnection)
    assert isinstance(snow, ServiceNowConnection)
    assert jira.token is not None
    assert jira.token.get_secret_value() == "kr-jira-7d1e"
    assert snow.password is not None
    assert snow.password.get_secret_value() == "kr-snow-0a2b"
    assert "kr-jira-7d1e" not in repr(settings)
    assert "kr-snow-0a2b" not in settings.model_dump_json()


def test_missing_keyring_entry_names_connection_key_service_and_user(
    tmp_path: Path, use_keyring: Any
) -> None:
    ring = MemoryKeyring()
    ring.set_password("jira-prod", "bot@acme.com", "kr-jira-7d1e")
    use_keyring(ring)
    text = JIRA + 'token_keyring = "jira-prod"\n' + SNOW + 'password_keyring = "snow-prod"\n'
    message = load_error(write(tmp_path, text))
    assert (
        "connections[1] (servicenow): password_keyring: no keyring entry for service "
        "'snow-prod' and user 'qualytics_integration'"
    ) in message
    assert "kr-jira-7d1e" not in message


def test_no_usable_keyring_backend_is_a_config_error(tmp_path: Path, use_keyring: Any) -> None:
    use_keyring(keyring.backends.fail.Keyring())
    message = load_error(write(tmp_path, JIRA + 'token_keyring = "jira-prod"\n'))
    assert "connections[0] (jira): token_keyring: no usable OS keyring on this machine" in message
    assert "token_env" in message


def test_failing_keyring_backend_is_a_config_error(tmp_path: Path, use_keyring: Any) -> None:
    use_keyring(LockedKeyring())
    message = load_error(write(tmp_path, JIRA + 'token_keyring = "jira-prod"\n'))
    assert "connections[0] (jira): token_keyring: the OS keyring failed (KeyringLocked)" in message


# --------------------------------------------------------------------------- other mistakes


def test_bad_connection_url_names_the_key(tmp_path: Path) -> None:
    text = JIRA.replace("https://acme.atlassian.net", "ftp://acme.atlassian.net")
    message = load_error(write(tmp_path, text + 'token_env = "JIRA_API_TOKEN"\n'))
    assert "connections[0].url: must start with https://" in message


def test_connection_url_without_host_names_the_key(tmp_path: Path) -> None:
    text = JIRA.replace("https://acme.atlassian.net", "https://")
    message = load_error(write(tmp_path, text + 'token_env = "JIRA_API_TOKEN"\n'))
    assert "connections[0].url: has no host" in message


def test_bad_platform_url_names_the_key(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, '[platform]\nurl = "acme.qualytics.io"\n'))
    assert "platform.url: must be an https:// URL with a host" in message


def test_duplicate_connection_names_name_the_second(tmp_path: Path) -> None:
    text = (JIRA + 'token_env = "JIRA_API_TOKEN"\n') * 2
    message = load_error(write(tmp_path, text))
    assert (
        "connections[1].name: duplicate connection name 'jira' (already used by connections[0])"
    ) in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (JIRA.replace('provider = "jira"\n', ""), "connections[0].provider: missing"),
        (JIRA.replace('"jira"\nurl', '"github"\nurl'), "connections[0].provider: must be"),
        (JIRA.replace('email = "bot@acme.com"\n', ""), "connections[0].email: Field required"),
        ("platform = 5\n", "platform: must be a table"),
        ('[connections]\nname = "x"\n', "connections: must be an array of tables"),
    ],
    ids=["no-provider", "bad-provider", "no-email", "platform-not-table", "connections-table"],
)
def test_shape_mistakes_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(write(tmp_path, text))


def test_invalid_toml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[platform]\nname = "Qualytics"\nurl = https://acme.qualytics.io\n')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 3" in message


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        load_settings(missing, env={})


def test_no_file_anywhere_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # an empty user config dir
    settings = load_settings(env={})
    assert isinstance(settings, Settings)
    assert settings.source is None
    assert settings.connections == []
    assert (settings.receiver.host, settings.receiver.port) == ("127.0.0.1", 8787)


# --------------------------------------------------------------------------- the environment


def test_every_setting_has_a_nested_environment_variable(tmp_path: Path) -> None:
    connections = (
        '[{"name": "jira", "provider": "jira", "url": "https://acme.atlassian.net", '
        '"email": "bot@acme.com", "token_env": "JIRA_API_TOKEN"}]'
    )
    env = {
        **SECRETS,
        "ANOMALY_DESK_DATA_DIR": str(tmp_path / "data"),
        "ANOMALY_DESK_RECEIVER__HOST": "127.0.0.3",
        "ANOMALY_DESK_RECEIVER__PORT": "9300",
        "ANOMALY_DESK_RECEIVER__MAX_BODY_BYTES": "2048",
        "ANOMALY_DESK_RECEIVER__ALLOWED_HOSTS": "desk.example, *.acme.example",
        "ANOMALY_DESK_SYNC__CONCURRENCY": "5",
        "ANOMALY_DESK_SYNC__REFRESH_INTERVAL_S": "0",
        "ANOMALY_DESK_PLATFORM__NAME": "DQ Hub",
        "ANOMALY_DESK_PLATFORM__URL": "https://dq.example",
        "ANOMALY_DESK_CONNECTIONS": connections,
    }
    settings = load_settings(write(tmp_path, ""), env=env)
    assert settings.data_dir == tmp_path / "data"
    receiver = settings.receiver
    assert (receiver.host, receiver.port, receiver.max_body_bytes) == ("127.0.0.3", 9300, 2048)
    assert receiver.allowed_hosts == ["desk.example", "*.acme.example"]
    assert (settings.sync.concurrency, settings.sync.refresh_interval_s) == (5, 0)
    assert (settings.platform.name, settings.platform.url) == ("DQ Hub", "https://dq.example")
    (jira,) = settings.connections
    assert isinstance(jira, JiraConnection)
    assert jira.token is not None
    assert jira.token.get_secret_value() == JIRA_TOKEN  # resolved like a file's connection


def test_a_table_may_come_as_json_and_lists_as_json_arrays(tmp_path: Path) -> None:
    env = {
        "ANOMALY_DESK_SYNC": '{"concurrency": 7, "per_connection": 2}',
        "ANOMALY_DESK_ALLOWED_HOSTS": '["a.example", "b.example"]',
    }
    settings = load_settings(write(tmp_path, ""), env=env)
    assert (settings.sync.concurrency, settings.sync.per_connection) == (7, 2)
    assert settings.receiver.allowed_hosts == ["a.example", "b.example"]


def test_nested_names_beat_short_names_and_the_file_fills_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, '[receiver]\nhost = "127.0.0.2"\nport = 9000\nmax_body_bytes = 10\n')
    env = {
        "ANOMALY_DESK_PORT": "9100",
        "ANOMALY_DESK_RECEIVER__PORT": "9101",
        "ANOMALY_DESK_HOST": "127.0.0.4",
    }
    settings = load_settings(path, env=env)
    assert settings.receiver.port == 9101
    assert settings.receiver.host == "127.0.0.4"
    assert settings.receiver.max_body_bytes == 10
    flags = load_settings(path, env=env, overrides={"port": 9200})
    assert flags.receiver.port == 9200


def test_the_env_argument_replaces_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALY_DESK_PORT", "9400")
    monkeypatch.setenv("ANOMALY_DESK_SYNC__CONCURRENCY", "3")
    path = write(tmp_path, "")
    given = load_settings(path, env={})
    assert (given.receiver.port, given.sync.concurrency) == (8787, 64)
    from_os = load_settings(path)
    assert (from_os.receiver.port, from_os.sync.concurrency) == (9400, 3)


def test_settings_alone_read_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ANOMALY_DESK_RECEIVER__PORT", "9500")
    monkeypatch.setenv("ANOMALY_DESK_PORT", "1")  # the nested name wins here too
    assert Settings().receiver.port == 9500


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"ANOMALY_DESK_SYNC__CONCURRENCY": "0"},
            "sync.concurrency (from ANOMALY_DESK_SYNC__CONCURRENCY): Input should be greater",
        ),
        (
            {"ANOMALY_DESK_RECEIVER__PORT": "eighty"},
            "receiver.port (from ANOMALY_DESK_RECEIVER__PORT): Input should be a valid integer",
        ),
        (
            {"ANOMALY_DESK_RECEIVER": '{"port": "eighty"}'},
            "receiver.port (from ANOMALY_DESK_RECEIVER): Input should be a valid integer",
        ),
        (
            {"ANOMALY_DESK_RECEIVER__PROT": "1"},
            "receiver.prot (from ANOMALY_DESK_RECEIVER__PROT): Extra inputs are not permitted "
            "(did you mean 'port'?)",
        ),
        (
            {"ANOMALY_DESK_SYNC": '{"concurrency": 7, "hunter2-secret'},
            "sync (from ANOMALY_DESK_SYNC): not valid JSON",
        ),
    ],
    ids=["nested", "nested-port", "json-table", "nested-unknown", "bad-json"],
)
def test_bad_nested_variable_is_named_without_its_value(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    message = load_error(write(tmp_path, ""), env=env)
    assert expected in message
    assert "hunter2" not in message


def test_a_flag_over_a_bad_variable_is_not_blamed_on_it(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    settings = load_settings(path, env={"ANOMALY_DESK_PORT": "eighty"}, overrides={"port": 9200})
    assert settings.receiver.port == 9200


def test_receiver_secrets_are_trimmed_and_may_be_named_by_a_nested_variable(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "")
    settings = load_settings(path, env={"ANOMALY_DESK_WEBHOOK_SECRET": "  hook-secret-1\n"})
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "hook-secret-1"
    env = {
        "ANOMALY_DESK_RECEIVER__WEBHOOK_SECRET_ENV": "HOOK",
        "HOOK": "hook-secret-2 ",
        "ANOMALY_DESK_WEBHOOK_SECRET": "not-this-one",
    }
    named = load_settings(path, env=env)
    assert named.webhook_secret is not None
    assert named.webhook_secret.get_secret_value() == "hook-secret-2"
    message = load_error(path, env={"ANOMALY_DESK_RECEIVER__WEBHOOK_SECRET_ENV": "HOOK"})
    assert message == f"{path}: receiver.webhook_secret_env names HOOK, which is unset or empty"


def test_a_signing_secret_that_is_not_a_standard_webhooks_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"ANOMALY_DESK_SIGNING_SECRET": "whsec_not base64!"})
    assert str(info.value).startswith(
        "ANOMALY_DESK_SIGNING_SECRET: not a Standard Webhooks signing secret"
    )
    assert "not base64!" not in str(info.value)
    good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    settings = load_settings(path, env={"ANOMALY_DESK_SIGNING_SECRET": good})
    assert settings.signing_secret is not None
    assert settings.has_webhook_auth


def test_internal_fields_are_not_settable_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    settings = load_settings(path, env={"ANOMALY_DESK_SOURCE": "/etc/passwd"})
    assert settings.source == path


def test_the_dashboard_reads_confirm_notes_from_the_file_or_its_variable(tmp_path: Path) -> None:
    import argparse

    from anomaly_desk.tui.launcher import _confirm_notes

    config = tmp_path / "anomaly-desk.toml"
    config.write_text("[dashboard]\nconfirm_notes = false\n")
    assert load_settings(config, env={}).dashboard.confirm_notes is False
    assert _confirm_notes(argparse.Namespace(config=config)) is False
    config.write_text("")
    variable = {"ANOMALY_DESK_DASHBOARD__CONFIRM_NOTES": "false"}
    assert load_settings(config, env=variable).dashboard.confirm_notes is False
    assert load_settings(config, env={}).dashboard.confirm_notes is True
    config.write_text("[dashboard]\nconfirm_notes = 'maybe'\n")
    with pytest.raises(ConfigError, match=r"dashboard\.confirm_notes"):
        load_settings(config, env={})
    assert _confirm_notes(argparse.Namespace(config=config)) is True  # unreadable: ask
