"""A text search of the cold archive reads candidates from the per-month search-text sidecars
(``YYYY-MM.text``): every page of every search must equal a brute-force filter of the rows, over
odd data (quotes, backslashes, newlines, non-ASCII, tabs, digits that look like the sidecar's own
prefix), several runs, records written again and ids hot again; and a sidecar cut short, removed,
longer than the index says, garbage, or missing in an older archive gives the same answers after
reopening (rebuilt from its month)."""

from __future__ import annotations

import random
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from anomaly_desk.core.archive import (
    INDEX_FILE,
    MAGIC,
    ColdArchive,
    month_of,
    search_text,
    sort_key,
)
from anomaly_desk.core.jsontypes import JsonObject

STATUSES = ("Resolved", "Duplicate", "Invalid", "Discarded")
MONTHS = ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04")
WORDS = (
    "amount",
    "Null",
    'quote"d',
    "back\\slash",
    "two\nlines",
    "tab\there",
    "Ünïcödé",
    "İstanbul",  # lower() makes it longer
    "straße",
    "😀",
    "12 34",  # looks like a sidecar line's "offset id" prefix
    "\\n",  # a literal backslash-n: not a newline
    "\t7",
)
NEEDLES = (
    "amount",
    "null",
    '"',
    'quote"d',
    "\\",
    "back\\slash",
    "\\n",
    "two\nlines",
    "\n",  # stripped: no text, the listing walk
    "o\nl",  # across a newline in a message
    "warehouse\ntable",  # across the parts of the search text
    "\t",
    "tab\th",
    "ünïcödé",
    "i̇stanbul",
    "straße",
    "😀",
    "12 34",
    "0 1",  # an offset and an id, as the sidecar's prefix holds them
    "7",
    "1",
    "\t7",
    "jira-",
    "zzz no such text",
)


def row(rng: random.Random, anomaly_id: int, months: tuple[str, ...]) -> JsonObject:
    month = rng.choice(months)
    created: Any = f"{month}-{rng.randint(1, 9):02d}T08:00:00Z"
    if rng.random() < 0.05:
        created = rng.choice(("2099-12-31T23:59:59Z", "", 12345, "zz odd", "2026-02-01T00:00Zé"))
    words = rng.sample(WORDS, k=rng.randint(0, 3))
    doc: dict[str, Any] = {
        "id": anomaly_id,
        "type": rng.choice(("record", "shape")),
        "status": rng.choice(STATUSES) if rng.random() < 0.95 else None,
        "message": " ".join([*words, str(anomaly_id)]),
        "fields": rng.sample(["amount", "customer_id", "Ünit"], k=rng.randint(0, 2)),
        "datastore": {"id": 1, "name": "warehouse"},
        "container": {"id": 2, "name": rng.choice(("table", "Tåble", "orders"))},
        "created": created,
        "updated_at": f"{month}-{rng.randint(10, 28)}T08:00:00.000Z",
        "links": [{"ticket_key": f"JIRA-{anomaly_id % 13}"}] if rng.random() < 0.2 else [],
    }
    return doc


def fill(archive: ColdArchive, rng: random.Random, n: int) -> dict[int, JsonObject]:
    """Several runs; ids archived again later (restored, changed, compacted again)."""
    current: dict[int, JsonObject] = {}
    for seq in range(1, 5):
        ids = rng.sample(range(1, n + 1), k=n // 2)
        rows = [row(rng, i, MONTHS[seq - 1 : seq + 1]) for i in ids]
        archive.append(rows, seq)
        current.update({int(r["id"]): r for r in rows})
        if seq % 2:
            archive.save_index()
    return current


def expected(
    current: dict[int, JsonObject], hot: set[int], statuses: set[str] | None, needle: str
) -> list[int]:
    """The brute-force answer: every current row not hot that qualifies, newest first."""
    text = needle.strip().lower()
    rows = [
        r
        for i, r in current.items()
        if i not in hot
        and (statuses is None or r.get("status") in statuses)
        and text in search_text(r)
    ]
    return [int(r["id"]) for r in sorted(rows, key=sort_key, reverse=True)]


def pages(
    archive: ColdArchive, hot: set[int], statuses: set[str] | None, limit: int, needle: str
) -> list[int]:
    seen: list[int] = []
    after = None
    while True:
        page, after = archive.search(needle, statuses, limit, after, hot.__contains__)
        assert len(page) <= limit
        seen += [int(r["id"]) for r in page]
        if after is None:
            return seen
        assert page


def check(archive: ColdArchive, current: dict[int, JsonObject], rng: random.Random) -> None:
    hot = set(rng.sample(sorted(current), k=len(current) // 10)) if current else set()
    for statuses in (None, {"Resolved", "Invalid"}, {"Discarded"}):
        for needle in NEEDLES:
            want = expected(current, hot, statuses, needle)
            for limit in (6, 1000):
                assert pages(archive, hot, statuses, limit, needle) == want, (needle, limit)
            first, _ = archive.search(needle, statuses, 1, None, hot.__contains__)
            assert [int(r["id"]) for r in first] == want[:1]
        for needle in NEEDLES[:8]:  # lower-cased like the text
            upper = needle.upper()
            want = expected(current, hot, statuses, upper)
            assert pages(archive, hot, statuses, 50, upper) == want


def search_all(archive: ColdArchive, hot: set[int] | None = None) -> dict[str, list[int]]:
    chosen = hot or set()
    return {needle: pages(archive, chosen, None, 25, needle) for needle in NEEDLES}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_page_of_every_text_search_equals_a_brute_force_filter(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    current = fill(archive, rng, 300)
    check(archive, current, rng)  # part indexed, part appended since
    archive.save_index()
    check(ColdArchive(path).open(), current, rng)
    archive = ColdArchive(path).open()
    archive.delete_months(MONTHS[2])  # delete_after_days: the sidecars go with their months
    current = {i: r for i, r in current.items() if month_of(r) >= MONTHS[2]}
    assert sorted(p.name for p in path.glob("*.text")) == [f"{m}.text" for m in MONTHS[2:]]
    check(archive, current, rng)
    check(ColdArchive(path).open(), current, rng)
    (path / INDEX_FILE).unlink()
    check(ColdArchive(path).open(), current, rng)  # index rebuilt, sidecars with it


def test_sidecars_are_private_and_hold_no_more_than_one_line_per_record(tmp_path: Path) -> None:
    rng = random.Random(9)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    fill(archive, rng, 100)
    archive.save_index()
    lines = 0
    for sidecar in sorted(path.glob("*.text")):
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
        lines += sidecar.read_bytes().count(b"\n")
    assert lines == 4 * 50  # four runs of 50 records


def prepared(tmp_path: Path, seed: int) -> tuple[Path, dict[str, list[int]], set[int]]:
    """An archive with its index written, and what every search answers."""
    rng = random.Random(seed)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    current = fill(archive, rng, 200)
    archive.save_index()
    hot = set(rng.sample(sorted(current), k=20))
    answers = search_all(archive, hot)
    for needle, ids in answers.items():
        assert ids == expected(current, hot, None, needle)
    return path, answers, hot


def damage(sidecar: Path, how: str) -> None:
    raw = sidecar.read_bytes()
    if how == "cut short":
        sidecar.write_bytes(raw[: len(raw) // 2])
    elif how == "removed":
        sidecar.unlink()
    elif how == "longer":  # a crash after its append, before the index: torn or whole lines
        sidecar.write_bytes(raw + b"999 1\tamount null 1\n12 3")
    elif how == "garbage":  # same length, other bytes
        sidecar.write_bytes(bytes(random.Random(1).randrange(256) for _ in raw))
    elif how == "other lines":  # well formed, but not what the index's CRC says
        sidecar.write_bytes(raw.replace(b"amount", b"AMOUNT").replace(b"null", b"nUll"))
    elif how == "emptied":
        sidecar.write_bytes(b"")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["cut short", "removed", "longer", "garbage", "other lines", "emptied"]
)
def test_a_damaged_sidecar_gives_the_same_answers_after_reopening(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, answers, hot = prepared(tmp_path, 3)
    before = {p.name: p.read_bytes() for p in path.glob("*.text")}
    for sidecar in sorted(path.glob("*.text"))[::2]:
        damage(sidecar, how)
    archive = ColdArchive(path).open()
    assert search_all(archive, hot) == answers
    assert search_all(ColdArchive(path).open(), hot) == answers
    assert {p.name: p.read_bytes() for p in path.glob("*.text")} == before  # repaired, exactly
    if how != "longer":
        assert "rebuilding it from its month file" in caplog.text or "rebuilt from" in caplog.text


def test_a_sidecar_damaged_while_open_is_rebuilt_at_its_first_search(tmp_path: Path) -> None:
    """Checked against the index's CRC once per month, at its first use."""
    path, answers, hot = prepared(tmp_path, 4)
    archive = ColdArchive(path).open()
    for sidecar in path.glob("*.text"):
        damage(sidecar, "other lines")
    assert search_all(archive, hot) == answers


def test_a_crash_between_the_appends_and_the_index_is_read_back(tmp_path: Path) -> None:
    """Records appended to month files and sidecars, no index: the next open reads the months'
    tails and writes their sidecar lines again (a sidecar torn mid-line or missing its part)."""
    rng = random.Random(5)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    current = fill(archive, rng, 200)
    archive.save_index()
    saved = {p: p.read_bytes() for p in path.glob("*.text")}
    rows = [row(rng, i, MONTHS[3:]) for i in rng.sample(range(1, 400), k=120)]
    archive.append(rows, 9)  # durable, but no index written: as if killed right here
    current.update({int(r["id"]): r for r in rows})
    grown = sorted(p for p in path.glob("*.text") if p.stat().st_size > len(saved.get(p, b"")))
    assert grown
    raw = grown[0].read_bytes()
    grown[0].write_bytes(raw[: len(saved.get(grown[0], b"")) + 7])  # torn inside a new line
    if len(grown) > 1:  # the other never got its lines (killed before that append)
        grown[1].write_bytes(saved.get(grown[1], b""))
    check(ColdArchive(path).open(), current, rng)
    check(ColdArchive(path).open(), current, rng)


def test_an_archive_without_sidecars_gets_them_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An archive written before the sidecars: its index has no ``text``; rebuilt, logged."""
    rng = random.Random(6)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    current = fill(archive, rng, 200)
    archive.save_index()
    index = path / INDEX_FILE
    raw = index.read_bytes()
    end = raw.find(b"\n", len(MAGIC))
    header = orjson.loads(raw[len(MAGIC) : end])
    del header["text"]
    index.write_bytes(MAGIC + orjson.dumps(header) + raw[end:])
    for sidecar in path.glob("*.text"):
        sidecar.unlink()
    check(ColdArchive(path).open(), current, rng)
    assert "search text of 5 month(s)" in caplog.text
    assert b'"text"' in index.read_bytes()
    assert len(list(path.glob("*.text"))) == 5


def test_a_sidecar_of_a_month_gone_is_deleted(tmp_path: Path) -> None:
    path, answers, hot = prepared(tmp_path, 8)
    shutil.copy(path / "2026-01.text", path / "2024-01.text")  # a month no longer there
    archive = ColdArchive(path).open()
    assert not (path / "2024-01.text").exists()
    assert search_all(archive, hot) == answers


def test_searches_while_a_run_appends_see_every_settled_match(tmp_path: Path) -> None:
    """A search in one thread while a compaction appends in another (the receiver runs both):
    the records already there are found each time, whatever is being appended meanwhile."""
    rng = random.Random(12)
    path = tmp_path / "archive"
    archive = ColdArchive(path).open()
    current = fill(archive, rng, 300)
    archive.save_index()
    want = expected(current, set(), None, "amount")
    assert want
    errors: list[BaseException] = []
    done = threading.Event()

    def append() -> None:
        try:
            for seq in range(10, 40):
                rows = [row(rng, i, MONTHS[1:]) for i in range(1000 + 40 * seq, 1040 + 40 * seq)]
                for r in rows:
                    r["message"], r["fields"] = "no match here", []
                archive.append(rows, seq)
                if seq % 10 == 0:
                    archive.save_index()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=append)
    writer.start()
    searches = 0
    while not done.is_set() or searches < 5:
        assert pages(archive, set(), None, 10, "amount") == want
        searches += 1
    writer.join()
    assert not errors, errors
    assert pages(ColdArchive(path).open(), set(), None, 10, "amount") == want
