"""Pages of the cold archive newest first (``archive=1``): the listing walk and the month scan
that stops early must give exactly what a full scan gives, over odd data (created in the future,
missing, not a string, ties), records written again, months deleted, ids hot again, an index of
the older format and a listing that cannot be read; and paging with ``after`` loses and repeats
nothing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from anomaly_desk.core.archive import INDEX_FILE, MAGIC, ColdArchive, month_of, sort_key
from anomaly_desk.core.jsontypes import JsonObject

STATUSES = ("Resolved", "Duplicate", "Invalid", "Discarded")
MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04", "2026-05")
ODD_CREATED: tuple[Any, ...] = (
    "2099-12-31T23:59:59Z",  # in the future: newer than anything in a later month
    None,  # missing: received_at orders it
    "",
    12345,  # not a string
    "2026-03-01T00:00:00.000Z",  # a tie with others (then the id orders)
    "zz not a time",
    "2026-02-01T00:00:00Zé",  # not ASCII
)


def row(rng: random.Random, anomaly_id: int, months: tuple[str, ...] = MONTHS) -> JsonObject:
    month = rng.choice(months)
    if rng.random() < 0.03:  # rare, so that months still differ in their newest
        created: Any = rng.choice(ODD_CREATED)
    else:  # detected shortly before it was archived, as real data is
        created = f"{month}-{rng.randint(1, 9):02d}T08:00:00Z"
    doc: dict[str, Any] = {
        "id": anomaly_id,
        "type": "record",
        "status": rng.choice(STATUSES) if rng.random() < 0.95 else 7,
        "message": f"{'a NEEDLE in ' if rng.random() < 0.2 else ''}{anomaly_id} nulls",
        "fields": ["amount"],
        "received_at": rng.choice(("2025-06-01T00:00:00.000Z", None)),
        "updated_at": f"{month}-{rng.randint(10, 28)}T08:00:00.000Z",
        "links": [],
    }
    if created is not None:
        doc["created"] = created
    return doc


def expected(
    current: dict[int, JsonObject],
    hot: set[int],
    statuses: set[str] | None,
    needle: str = "",
) -> list[int]:
    """What a full scan gives: every current record that qualifies, newest first."""
    text = needle.lower()
    rows = [
        r
        for i, r in current.items()
        if i not in hot
        and (statuses is None or r.get("status") in statuses)
        and text in str(r.get("message", "")).lower() + f"\n{i}"
    ]
    return [int(r["id"]) for r in sorted(rows, key=sort_key, reverse=True)]


def pages(
    archive: ColdArchive, hot: set[int], statuses: set[str] | None, limit: int, needle: str = ""
) -> list[int]:
    """Every page from the first, following ``after``; each id once, in order."""
    seen: list[int] = []
    after = None
    while True:
        page, after = archive.search(needle, statuses, limit, after, hot.__contains__)
        assert len(page) <= limit
        seen += [int(r["id"]) for r in page]
        if after is None:
            break
        assert page, "a position to continue from, after an empty page"
    assert len(seen) == len(set(seen)), "an anomaly on two pages"
    return seen


def check(archive: ColdArchive, current: dict[int, JsonObject], rng: random.Random) -> None:
    hot = set(rng.sample(sorted(current), k=len(current) // 10)) if current else set()
    for statuses in (None, {"Resolved", "Invalid"}, {"Discarded"}, {"Active"}):
        for limit in (1, 7, 50, 1000):
            assert pages(archive, hot, statuses, limit) == expected(current, hot, statuses)
        for needle in ("needle", "NEEDLE in", "nope"):
            want = expected(current, hot, statuses, needle)
            assert pages(archive, hot, statuses, 9, needle) == want
            first, _ = archive.search(needle, statuses, 3, None, hot.__contains__)
            assert [int(r["id"]) for r in first] == want[:3]


def fill(archive: ColdArchive, rng: random.Random, n: int) -> dict[int, JsonObject]:
    """Several runs; some ids archived again (a later run, a newer record, in the same month
    or a later one: its ``updated_at`` only grows)."""
    current: dict[int, JsonObject] = {}
    for seq in range(1, 5):
        ids = rng.sample(range(1, n + 1), k=n // 2)
        rows = [row(rng, i, MONTHS[seq - 1 : seq + 1]) for i in ids]
        archive.append(rows, seq)
        current.update({int(r["id"]): r for r in rows})
        if seq % 2:
            archive.save_index()
    return current


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pages_across_months_equal_a_full_scan(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    archive = ColdArchive(tmp_path / "archive").open()
    current = fill(archive, rng, 400)
    check(archive, current, rng)  # part of it in the index's listing, part appended since
    archive.save_index()
    check(ColdArchive(tmp_path / "archive").open(), current, rng)  # read back from the index
    archive = ColdArchive(tmp_path / "archive").open()
    gone = archive.delete_months(MONTHS[2])
    assert [info.name for info in gone] == list(MONTHS[:2])
    current = {i: r for i, r in current.items() if month_of(r) >= MONTHS[2]}
    check(archive, current, rng)
    check(ColdArchive(tmp_path / "archive").open(), current, rng)
    (tmp_path / "archive" / INDEX_FILE).unlink()
    check(ColdArchive(tmp_path / "archive").open(), current, rng)  # rebuilt from the months


def test_an_index_of_the_older_format_is_rebuilt_and_pages_stay_right(tmp_path: Path) -> None:
    rng = random.Random(7)
    archive = ColdArchive(tmp_path / "archive").open()
    current = fill(archive, rng, 300)
    archive.save_index()
    path = tmp_path / "archive" / INDEX_FILE
    raw = path.read_bytes()
    end = raw.find(b"\n", len(MAGIC))
    header = orjson.loads(raw[len(MAGIC) : end])
    count, links_len = header["count"], header["links_len"]
    body = raw[end + 1 : end + 1 + 16 * count + links_len]  # ids, locations, links: no more
    old = {k: header[k] for k in ("count", "crc", "links_crc", "months", "written")}
    path.write_bytes(MAGIC + orjson.dumps(old) + b"\n" + body)
    check(ColdArchive(tmp_path / "archive").open(), current, rng)
    assert b'"listing"' in path.read_bytes()  # written again in the new format
    check(ColdArchive(tmp_path / "archive").open(), current, rng)


def test_a_listing_that_cannot_be_read_is_scanned_from_the_months(tmp_path: Path) -> None:
    rng = random.Random(11)
    archive = ColdArchive(tmp_path / "archive").open()
    current = fill(archive, rng, 300)
    archive.save_index()
    path = tmp_path / "archive" / INDEX_FILE
    raw = bytearray(path.read_bytes())
    raw[-5:] = b"XXXXX"  # the end of the listing's keys
    path.write_bytes(bytes(raw))
    check(ColdArchive(tmp_path / "archive").open(), current, rng)


def test_paging_with_after_loses_and_repeats_nothing_while_runs_append(tmp_path: Path) -> None:
    """Pages taken while a run appends newer records: the old ones are each seen once."""
    rng = random.Random(5)
    archive = ColdArchive(tmp_path / "archive").open()
    first = [row(rng, i) for i in range(1, 301)]
    for r in first:
        r["created"] = f"2025-01-{10 + r['id'] % 18}T08:00:00Z"
    archive.append(first, 1)
    archive.save_index()
    seen: list[int] = []
    after = None
    newer = 1000
    while True:
        page, after = archive.search("", None, 20, after)
        seen += [int(r["id"]) for r in page]
        if after is None:
            break
        newer += 1  # a newer one arrives between two pages: it is above the position
        archive.append([{**row(rng, newer), "created": "2026-12-01T00:00:00Z"}], 2)
    assert seen == expected({int(r["id"]): r for r in first}, set(), None)


def test_a_month_with_an_odd_newest_record_is_read_and_ties_go_by_id(tmp_path: Path) -> None:
    """The scan stops only before a month whose newest record cannot enter the page: a record
    created "in the future" in an old month is found, and a tie on the time is settled by the
    id (a month whose newest has the same time and a higher id than the page's last is read)."""
    tie = "2026-05-01T00:00:00Z"

    def one(i: int, month: str, created: str) -> JsonObject:
        return {
            "id": i,
            "status": "Resolved",
            "message": "needle",
            "created": created,
            "updated_at": f"{month}-15T00:00:00Z",
            "links": [],
        }

    archive = ColdArchive(tmp_path / "archive").open()
    archive.append([one(10, "2026-05", tie), one(2, "2026-05", tie), one(1, "2026-05", tie)], 1)
    archive.append([one(5, "2026-04", tie)], 1)
    archive.append([one(3, "2026-03", "2026-03-01T00:00:00Z")], 1)
    archive.append([one(4, "2026-01", "2099-01-01T00:00:00Z")], 1)
    archive.save_index()
    for opened in (archive, ColdArchive(tmp_path / "archive").open()):
        for needle in ("", "needle"):
            page, after = opened.search(needle, None, 3)
            assert [r["id"] for r in page] == [4, 10, 5]
            assert after == (tie, 5)
            page, after = opened.search(needle, None, 3, after)
            assert [r["id"] for r in page] == [2, 1, 3]
            assert after is None
