"""``[platform]``: the API token by reference (variable or keyring), write_back, import_on_start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from anomaly_desk.core.config import ConfigError, load_settings

TOKEN = "qualytics-token-5d2e8b71c4"
PLATFORM = '[platform]\nname = "Qualytics"\nurl = "https://acme.qualytics.io"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    """The ConfigError message; also proves the token is not in it."""
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"QUALYTICS_TOKEN": TOKEN, **(env or {})})
    message = str(info.value)
    assert TOKEN not in message
    assert str(path) in message
    return message


class MemoryKeyring(keyring.backend.KeyringBackend):
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


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(previous)


def test_token_env_resolves_and_write_back_defaults_on(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + 'token_env = "QUALYTICS_TOKEN"\n')
    platform = load_settings(path, env={"QUALYTICS_TOKEN": f"  {TOKEN}\n"}).platform
    assert platform.token is not None
    assert platform.token.get_secret_value() == TOKEN  # trimmed, as the connections' are
    assert (platform.write_back, platform.writes_back, platform.has_api) == (None, True, True)
    assert platform.import_on_start is False


def test_without_a_token_the_platform_is_only_a_name_and_a_url(tmp_path: Path) -> None:
    platform = load_settings(write(tmp_path, PLATFORM), env={}).platform
    assert platform.token is None
    assert (platform.write_back, platform.writes_back, platform.has_api) == (None, False, False)


def test_write_back_may_be_turned_off_with_a_token(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + 'token_env = "QUALYTICS_TOKEN"\nwrite_back = false\n')
    platform = load_settings(path, env={"QUALYTICS_TOKEN": TOKEN}).platform
    assert platform.has_api
    assert platform.writes_back is False


def test_import_on_start_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + 'token_env = "QUALYTICS_TOKEN"\nimport_on_start = true\n')
    assert load_settings(path, env={"QUALYTICS_TOKEN": TOKEN}).platform.import_on_start is True


def test_the_token_never_shows_in_repr_str_or_dumps(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + 'token_env = "QUALYTICS_TOKEN"\n')
    settings = load_settings(path, env={"QUALYTICS_TOKEN": TOKEN})
    for text in (
        repr(settings),
        str(settings),
        repr(settings.platform),
        str(settings.model_dump()),
        settings.model_dump_json(),
    ):
        assert TOKEN not in text


def test_token_keyring_resolves_with_the_platform_name_as_user(
    tmp_path: Path, ring: MemoryKeyring
) -> None:
    ring.set_password("qualytics-prod", "Qualytics", "kr-platform-61ac")
    path = write(tmp_path, PLATFORM + 'token_keyring = "qualytics-prod"\n')
    platform = load_settings(path, env={}).platform
    assert platform.token is not None
    assert platform.token.get_secret_value() == "kr-platform-61ac"
    assert platform.writes_back


def test_a_missing_keyring_entry_names_service_and_user(
    tmp_path: Path, ring: MemoryKeyring
) -> None:
    message = load_error(write(tmp_path, PLATFORM + 'token_keyring = "qualytics-prod"\n'))
    assert message.endswith(
        "platform: token_keyring: no keyring entry for service 'qualytics-prod' and user "
        "'Qualytics'"
    )


def test_no_usable_keyring_is_a_config_error(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        message = load_error(write(tmp_path, PLATFORM + 'token_keyring = "qualytics-prod"\n'))
    finally:
        keyring.set_keyring(previous)
    assert "platform: token_keyring: no usable OS keyring on this machine; use token_env" in (
        message
    )


def test_write_back_without_a_token_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + "write_back = true\n")
    message = load_error(path)
    assert message == (
        f"{path}: platform: write_back: needs the platform's API token; name an environment "
        "variable with token_env or an OS keyring service with token_keyring"
    )


def test_import_on_start_without_a_token_is_an_error(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PLATFORM + "import_on_start = true\nwrite_back = true\n"))
    assert "platform: write_back, import_on_start: needs the platform's API token" in message


def test_a_token_without_a_url_is_an_error(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, '[platform]\ntoken_env = "QUALYTICS_TOKEN"\n'))
    assert "platform: url: missing; a token is configured" in message


def test_an_unset_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, PLATFORM + 'token_env = "QUALYTICS_TOKEN"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"QUALYTICS_TOKEN": " "})
    assert str(info.value) == (
        f"{path}: platform: token_env: environment variable QUALYTICS_TOKEN is unset or empty"
    )


def test_a_token_pasted_as_the_variable_name_is_not_repeated(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PLATFORM + f'token_env = "{TOKEN}-x"\n'))
    assert "platform: token_env: must be the name of an environment variable" in message
    assert f"{TOKEN}-x" not in message


def test_env_and_keyring_together_is_an_error(tmp_path: Path) -> None:
    text = PLATFORM + 'token_env = "QUALYTICS_TOKEN"\ntoken_keyring = "qualytics-prod"\n'
    message = load_error(write(tmp_path, text))
    assert "platform: token_env, token_keyring: set one of them, not both" in message


def test_a_token_written_in_the_file_is_refused(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PLATFORM + f'token = "{TOKEN}"\n'))
    assert "platform: token: secrets are not kept in the config file" in message
    assert "token_env" in message


def test_credentials_in_the_platform_url_are_refused(tmp_path: Path) -> None:
    text = PLATFORM.replace("https://acme", "https://bot:hunter2-secret@acme")
    message = load_error(write(tmp_path, text))
    assert "platform: url: credentials in the URL are not allowed" in message
    assert "hunter2-secret" not in message


def test_a_misspelt_key_gets_a_hint(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PLATFORM + 'tokn_env = "QUALYTICS_TOKEN"\n'))
    assert "platform.tokn_env: Extra inputs are not permitted (did you mean 'token_env'?)" in (
        message
    )


def test_every_platform_setting_has_a_nested_environment_variable(tmp_path: Path) -> None:
    env = {
        "ANOMALY_DESK_PLATFORM__URL": "https://dq.example",
        "ANOMALY_DESK_PLATFORM__TOKEN_ENV": "QUALYTICS_TOKEN",
        "ANOMALY_DESK_PLATFORM__WRITE_BACK": "false",
        "ANOMALY_DESK_PLATFORM__IMPORT_ON_START": "true",
        "ANOMALY_DESK_PLATFORM__TIMEOUT": "7.5",
        "QUALYTICS_TOKEN": TOKEN,
    }
    platform = load_settings(write(tmp_path, ""), env=env).platform
    assert (platform.url, platform.token_env) == ("https://dq.example", "QUALYTICS_TOKEN")
    assert platform.token is not None
    assert platform.token.get_secret_value() == TOKEN
    assert (platform.writes_back, platform.import_on_start, platform.timeout) == (False, True, 7.5)


def test_token_keyring_from_a_variable(tmp_path: Path, ring: MemoryKeyring) -> None:
    ring.set_password("dq", "DQ Hub", "kr-hub-0042")
    env = {
        "ANOMALY_DESK_PLATFORM__NAME": "DQ Hub",
        "ANOMALY_DESK_PLATFORM__URL": "https://dq.example",
        "ANOMALY_DESK_PLATFORM__TOKEN_KEYRING": "dq",
    }
    platform = load_settings(write(tmp_path, ""), env=env).platform
    assert platform.token is not None
    assert platform.token.get_secret_value() == "kr-hub-0042"


def test_a_token_given_as_a_value_in_the_environment_is_refused(tmp_path: Path) -> None:
    env = {"ANOMALY_DESK_PLATFORM__TOKEN": TOKEN}
    message = load_error(write(tmp_path, PLATFORM), env=env)
    assert "platform: token: the token is not given as a value" in message
    assert "token_env" in message


def test_a_bad_write_back_variable_is_named(tmp_path: Path) -> None:
    env = {"ANOMALY_DESK_PLATFORM__WRITE_BACK": "sometimes"}
    message = load_error(write(tmp_path, PLATFORM), env=env)
    assert "platform.write_back (from ANOMALY_DESK_PLATFORM__WRITE_BACK)" in message
