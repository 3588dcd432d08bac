"""Secrets named by ``*_vault`` references, read from a real OpenBao dev server."""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from anomaly_desk.core.config import ConfigError, Settings, SettingsLoader, load_settings
from anomaly_desk.core.connections import JiraConnection, ServiceNowConnection
from anomaly_desk.core.secrets import SecretRef, VaultError, vault_reader
from tests.secrets.conftest import Bao
from tests.support import free_port


def value(name: str) -> str:
    """A secret value no other test uses, to grep for."""
    return f"{name}-{secrets.token_hex(8)}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "anomaly-desk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def everything(path: str) -> str:
    """Every secret the desk uses, from Vault (``secret/<path>/...``)."""
    return f"""
[platform]
name = "Qualytics"
url = "https://acme.qualytics.io"
token_vault = "secret/{path}/platform#token"

[receiver]
webhook_secret_vault = "secret/{path}/receiver#webhook_secret"
signing_secret_vault = "secret/{path}/receiver#signing_secret"

[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_vault = "secret/{path}/jira#api_token"
webhook_secret_vault = "secret/{path}/jira#hook"

[[connections]]
name = "servicenow"
provider = "servicenow"
url = "https://acme.service-now.com"
username = "qualytics_integration"
password_vault = "secret/{path}/servicenow#password"

[[connections]]
name = "servicenow-oauth"
provider = "servicenow"
url = "https://acme2.service-now.com"
username = "desk_app"
auth = "oauth_client_credentials"
client_id = "desk-client"
client_secret_vault = "secret/{path}/servicenow#client_secret"
"""


def load_error(path: Path, env: dict[str, str], *leaks: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    for leak in leaks:
        assert leak not in message
    return message


def test_every_secret_kind_resolves_from_vault(tmp_path: Path, bao: Bao) -> None:
    path = bao.path()
    values = {
        "platform": value("platform-token"),
        "hook": value("receiver-hook"),
        "signing": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "jira": value("jira-token"),
        "jira_hook": value("jira-hook"),
        "password": value("snow-password"),
        "client": value("client-secret"),
    }
    bao.put(f"{path}/platform", token=values["platform"])
    bao.put(f"{path}/receiver", webhook_secret=values["hook"], signing_secret=values["signing"])
    bao.put(f"{path}/jira", api_token=values["jira"], hook=values["jira_hook"])
    bao.put(f"{path}/servicenow", password=values["password"], client_secret=values["client"])

    settings = load_settings(write(tmp_path, everything(path)), env=bao.env())

    jira, snow, oauth = settings.connections
    assert isinstance(jira, JiraConnection)
    assert isinstance(snow, ServiceNowConnection)
    assert isinstance(oauth, ServiceNowConnection)
    assert jira.token is not None
    assert jira.token.get_secret_value() == values["jira"]
    assert jira.webhook_secret is not None
    assert jira.webhook_secret.get_secret_value() == values["jira_hook"]
    assert snow.password is not None
    assert snow.password.get_secret_value() == values["password"]
    assert oauth.client_secret is not None
    assert oauth.client_secret.get_secret_value() == values["client"]
    assert settings.platform.token is not None
    assert settings.platform.token.get_secret_value() == values["platform"]
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == values["hook"]
    assert settings.signing_secret is not None
    assert settings.signing_secret.get_secret_value() == values["signing"]
    # nothing shows them: reprs, the JSON dump, the loader and the reader
    shown = "\n".join(
        [
            repr(settings),
            str(settings),
            settings.model_dump_json(),
            repr(SettingsLoader(None, None, bao.env())),
            repr(vault_reader(bao.env())),
        ]
    )
    for secret in [*values.values(), bao.token]:
        assert secret not in shown


def test_an_approle_login_reads_what_its_policy_allows(tmp_path: Path, bao: Bao) -> None:
    path = bao.path()
    if "approle/" not in bao.request("GET", "/v1/sys/auth").json()["data"]:
        enabled = bao.request("POST", "/v1/sys/auth/approle", json={"type": "approle"})
        assert enabled.status_code in (200, 204, 400), enabled.text  # 400: another worker's
    policy = f'path "secret/data/{path}/*" {{ capabilities = ["read"] }}'
    role = path.replace("/", "-")
    bao.request("PUT", f"/v1/sys/policies/acl/{role}", json={"policy": policy}).raise_for_status()
    bao.request(
        "POST",
        f"/v1/auth/approle/role/{role}",
        json={"token_policies": [role], "token_ttl": "10m"},
    ).raise_for_status()
    role_id = bao.request("GET", f"/v1/auth/approle/role/{role}/role-id").json()["data"]["role_id"]
    answer = bao.request("POST", f"/v1/auth/approle/role/{role}/secret-id").json()
    secret_id = answer["data"]["secret_id"]
    token = value("approle-jira")
    bao.put(f"{path}/jira", api_token=token)
    bao.put(f"{path}-elsewhere/jira", api_token="not for this role")
    approle = {"VAULT_ADDR": bao.url, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    config = """
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_vault = "secret/{}#api_token"
"""
    settings = load_settings(write(tmp_path, config.format(f"{path}/jira")), env=approle)
    assert settings.connections[0].token is not None
    assert settings.connections[0].token.get_secret_value() == token

    # outside the role's policy: 403, named
    message = load_error(write(tmp_path, config.format(f"{path}-elsewhere/jira")), approle)
    assert f"token_vault: secret/{path}-elsewhere/jira#api_token: " in message
    assert "refused the read (403 permission denied" in message
    # a wrong secret id: the login fails, said so without repeating either id
    wrong = {**approle, "VAULT_SECRET_ID": secret_id[:-4] + "0000"}
    message = load_error(write(tmp_path, config.format(f"{path}/jira")), wrong, secret_id, role_id)
    assert "the AppRole login at" in message
    assert "failed (HTTP 400" in message


@pytest.mark.parametrize(
    ("reference", "env", "expected"),
    [
        (
            "secret/{path}/missing#api_token",
            {},
            "token_vault: secret/{path}/missing#api_token: no secret at secret/{path}/missing in "
            "Vault at {url} (KV v2 read GET /v1/secret/data/{path}/missing answered 404)",
        ),
        (
            "secret/{path}/jira#apitoken",
            {},
            "token_vault: secret/{path}/jira#apitoken: the secret secret/{path}/jira has no key "
            "'apitoken' (its keys: api_token)",
        ),
        (
            "secret/{path}/jira#api_token",
            {"VAULT_TOKEN": "not-a-token"},
            "token_vault: secret/{path}/jira#api_token: Vault at {url} refused the read (403",
        ),
        (
            "secret/{path}/jira#api_token",
            {"VAULT_ADDR": "http://127.0.0.1:{closed}"},
            "token_vault: secret/{path}/jira#api_token: Vault at http://127.0.0.1:{closed} cannot "
            "be reached (ConnectError)",
        ),
        (
            "secret/{path}/jira#api_token",
            {"VAULT_ADDR": ""},
            "token_vault: secret/{path}/jira#api_token: VAULT_ADDR is unset",
        ),
        (
            "{token}",  # the secret pasted where the reference goes: not repeated
            {},
            "token_vault: must be a Vault reference mount/path#key",
        ),
    ],
    ids=["missing-path", "missing-key", "forbidden", "unreachable", "no-addr", "pasted-secret"],
)
def test_a_secret_vault_cannot_give_is_a_clear_error(
    tmp_path: Path, bao: Bao, reference: str, env: dict[str, str], expected: str
) -> None:
    path = bao.path()
    token = value("jira-token")
    bao.put(f"{path}/jira", api_token=token)
    fill: dict[str, Any] = {"path": path, "url": bao.url, "closed": free_port(), "token": token}
    config = f"""
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_vault = "{reference.format(**fill)}"
"""
    message = load_error(
        write(tmp_path, config), bao.env(**{k: v.format(**fill) for k, v in env.items()}), token
    )
    assert f"connections[0] (jira): {expected.format(**fill)}" in message
    assert str(tmp_path) in message  # the file is named
    assert bao.token not in message


def test_exactly_one_source_per_secret(tmp_path: Path, bao: Bao) -> None:
    base = """
[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_env = "JIRA_TOKEN"
token_vault = "secret/x/jira#api_token"
"""
    message = load_error(write(tmp_path, base), bao.env(JIRA_TOKEN="t"))
    assert "connections[0] (jira): token_env, token_vault: set one of them, not both" in message
    three = base + 'token_keyring = "jira-prod"\n'
    message = load_error(write(tmp_path, three), bao.env(JIRA_TOKEN="t"))
    assert "token_env, token_keyring, token_vault: set one of them, only one" in message
    receiver = '[receiver]\nwebhook_secret_env = "HOOK"\nwebhook_secret_vault = "secret/x/r#h"\n'
    message = load_error(write(tmp_path, receiver), bao.env(HOOK="h"))
    assert "receiver.webhook_secret_vault, receiver.webhook_secret_env: set one of them" in message
    receiver = '[receiver]\nsigning_secret_vault = "secret/x/r#s"\n'
    message = load_error(write(tmp_path, receiver), bao.env(ANOMALY_DESK_SIGNING_SECRET="s"))
    assert "receiver.signing_secret_vault, ANOMALY_DESK_SIGNING_SECRET: set one of them" in message
    platform = (
        '[platform]\nurl = "https://a.example"\ntoken_env = "T"\ntoken_vault = "secret/x/p#t"\n'
    )
    message = load_error(write(tmp_path, platform), bao.env(T="t"))
    assert "platform: token_env, token_vault: set one of them, not both" in message


def test_a_vault_signing_secret_must_look_like_one(tmp_path: Path, bao: Bao) -> None:
    path = bao.path()
    bad = value("not-base64!")
    bao.put(f"{path}/receiver", signing_secret=bad)
    text = f'[receiver]\nsigning_secret_vault = "secret/{path}/receiver#signing_secret"\n'
    message = load_error(write(tmp_path, text), bao.env(), bad)
    assert "not a Standard Webhooks signing secret" in message
    assert f"secret/{path}/receiver#signing_secret" in message


def test_vault_values_are_cached_for_the_ttl_and_fresh_reads_skip_the_cache(
    tmp_path: Path, bao: Bao
) -> None:
    path = bao.path()
    first, second, third = value("one"), value("two"), value("three")
    bao.put(f"{path}/jira", api_token=first)
    config = write(
        tmp_path,
        f"""
[secrets]
vault_ttl_s = 0.5

[[connections]]
name = "jira"
provider = "jira"
url = "https://acme.atlassian.net"
email = "bot@acme.com"
token_vault = "secret/{path}/jira#api_token"
webhook_secret_vault = "secret/{path}/jira#api_token"
""",
    )

    def token(settings: Settings) -> str:
        conn = settings.connections[0]
        assert conn.token is not None
        return conn.token.get_secret_value()

    reader = vault_reader(bao.env())
    reads = reader.reads
    settings = load_settings(config, env=bao.env())
    assert token(settings) == first
    assert reader.reads == reads + 1  # two references to one secret: one read
    bao.put(f"{path}/jira", api_token=second)
    assert token(load_settings(config, env=bao.env())) == first  # within the TTL: cached
    assert reader.reads == reads + 1
    assert token(load_settings(config, env=bao.env(), fresh_secrets=True)) == second
    assert reader.reads == reads + 2  # past the cache, still one read for both references
    loader = SettingsLoader(config, None, bao.env())
    bao.put(f"{path}/jira", api_token=third)
    assert token(loader.refresh_secrets(settings, ["jira"])) == third  # past the cache
    assert token(settings) == first  # the settings given are left alone
    time.sleep(0.55)
    bao.put(f"{path}/jira", api_token=first)
    assert token(load_settings(config, env=bao.env())) == first  # the TTL ran out: read again


def test_a_reference_is_mount_path_and_key() -> None:
    ref = SecretRef.parse("secret/anomaly-desk/jira#api_token")
    assert (ref.mount, ref.path, ref.key) == ("secret", "anomaly-desk/jira", "api_token")
    assert ref.url_path == "/v1/secret/data/anomaly-desk/jira"
    for bad in [
        "secret#key",
        "secret/a/b",
        "secret/a/b#",
        "secret/../b#k",
        "a b/c#d",
        "#only-a-key",
    ]:
        with pytest.raises(VaultError) as info:
            SecretRef.parse(bad)
        assert bad not in str(info.value)
