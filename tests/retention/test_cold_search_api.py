"""A search through a real receiver finds the same anomalies, in the same order, before and after
they move to the cold archive (``archive=1``, which reads the per-month search-text sidecars):
odd messages (quotes, backslashes, newlines, non-ASCII), two compaction runs, anomalies reopened
in between (hot again) and archived again."""

from __future__ import annotations

import random
from typing import Any

import httpx

from tests.retention.test_cold_api import anomaly, api, compact, send

__all__ = ["api"]  # the receiver fixture, shared with the other cold API tests

WORDS = ('say "hi"', "C:\\temp", "two\nlines", "Ünïcödé", "straße", "tab\there", "amount")
NEEDLES = ('"hi"', "\\", "c:\\temp", "two\nlines", "o\nl", "ünïcödé", "ÜNÏCÖDÉ", "straße", "amount")


def search(client: httpx.Client, needle: str, *, archive: bool) -> list[int]:
    """Every page of a search of everything, followed by its cursor."""
    params: dict[str, Any] = {"status": "all", "q": needle, "limit": 7}
    if archive:
        params["archive"] = "1"
    found: list[int] = []
    while True:
        answer = client.get("/api/anomalies", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found += [item["id"] for item in body["items"]]
        if not body["next_cursor"]:
            return found
        params["cursor"] = body["next_cursor"]


def test_a_search_finds_the_same_before_and_after_compaction(api: httpx.Client) -> None:
    rng = random.Random(16)
    sent = []
    for i in range(1, 61):
        message = " ".join([*rng.sample(WORDS, k=rng.randint(0, 3)), str(i)])
        status = "Active" if i % 6 == 0 else rng.choice(("Resolved", "Invalid", "Discarded"))
        sent.append(anomaly(i, status, message))
    send(api, *sent)
    before = {needle: search(api, needle, archive=False) for needle in NEEDLES}
    assert all(before.values()), before

    assert compact(api)["moved"] == 50
    assert {needle: search(api, needle, archive=True) for needle in NEEDLES} == before
    assert search(api, "amount", archive=False) == [i for i in before["amount"] if i % 6 == 0]

    reopened = [a for a in sent if a["status"] != "Active"][:8]
    send(api, *({**a, "status": "Active"} for a in reopened))  # hot again
    assert {needle: search(api, needle, archive=True) for needle in NEEDLES} == before
    send(api, *({**a, "status": "Resolved"} for a in reopened[:4]))  # archived again
    assert compact(api)["moved"] == 4
    assert {needle: search(api, needle, archive=True) for needle in NEEDLES} == before
