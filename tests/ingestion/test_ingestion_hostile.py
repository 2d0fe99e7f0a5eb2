"""Hostile input in the event files and CRM pages (issue 11): every record loads or is quarantined with
its file, line, byte offset and reason; nothing stops the load; quarantine rows are always writable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_corpus import DAY, LINE_CASES, MEGABYTE_ID
from ingestion_helpers import contact, esp_event, query, scalar, web_event, write_crm_export

from dagster_project.ingestion import loaders, upserts

VALID = {
    "web_events": lambda i: json.dumps(web_event(f"w-ok-{i}", DAY)).encode(),
    "esp_events": lambda i: json.dumps(esp_event(f"e-ok-{i}", DAY)).encode(),
}
ID_COLUMN = {"web_events": "message_id", "esp_events": "event_id"}


def write_day(source_dir: Path, stream: loaders.EventStream, lines: list[bytes], end: bytes = b"\n") -> str:
    path = source_dir / stream.folder / f"{DAY}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + end for line in lines))
    return str(path.relative_to(source_dir))


def load_day(url: str, source_dir: Path, stream: loaders.EventStream) -> loaders.LoadResult:
    with loaders.connect(url) as conn:
        loaders.ensure_tables(conn)
        return loaders.load_event_partition(conn, stream, source_dir, DAY, force=True)


@pytest.mark.parametrize("stream", [loaders.WEB_EVENTS, loaders.ESP_EVENTS], ids=lambda s: s.name)
def test_hostile_lines_are_quarantined_with_location_offset_and_reason(
    stream: loaders.EventStream, warehouse_url: str, tmp_path: Path
) -> None:
    cases = [case for case in LINE_CASES if case.stream == stream.name]
    lines: list[bytes] = []
    expected: dict[int, tuple[str, int]] = {}  # line -> (case name, byte offset)
    offset = 0
    for i, case in enumerate(cases):
        for line in (VALID[stream.name](i), case.line):
            lines.append(line)
            if line is case.line and case.reason:
                expected[len(lines)] = (case.name, offset)
            offset += len(line) + 1
    write_day(tmp_path, stream, lines)

    result = load_day(warehouse_url, tmp_path, stream)

    rows = query(
        warehouse_url,
        "select source_location, source_offset, reason, record from ops.quarantine where stream = %s",
        (stream.name,),
    )
    found = {
        int(location.rsplit(":", 1)[1]): (offset, reason, record) for location, offset, reason, record in rows
    }
    assert set(found) == set(expected), {n: found[n][1] for n in found}
    for line_number, (name, offset) in expected.items():
        case = next(c for c in cases if c.name == name)
        got_offset, reason, record = found[line_number]
        assert reason.startswith(case.reason), (name, reason)
        assert got_offset == offset, name
        assert len(record) <= 2_000, name
    prefix = "w" if stream.name == "web_events" else "e"
    landed = dict(
        query(warehouse_url, f"select {ID_COLUMN[stream.name]}, _source_line from raw.{stream.table}")
    )
    assert {f"{prefix}-ok-{i}": 2 * i + 1 for i in range(len(cases))}.items() <= landed.items()
    assert len(landed) == len(lines) - len(expected)
    assert (result.received, result.loaded, result.quarantined) == (len(lines), len(landed), len(expected))


def test_quarantined_bytes_are_stored_escaped(warehouse_url: str, tmp_path: Path) -> None:
    relative = write_day(
        tmp_path,
        loaders.ESP_EVENTS,
        [
            b'{"event_id": "e-raw\x00nul"}',
            b'{"event_id": "bad-\xff"}',
            json.dumps({"event_id": MEGABYTE_ID}).encode(),
        ],
    )
    load_day(warehouse_url, tmp_path, loaders.ESP_EVENTS)
    records = dict(query(warehouse_url, "select source_location, record from ops.quarantine"))
    assert records[f"{relative}:1"] == '{"event_id": "e-raw\\u0000nul"}'
    assert records[f"{relative}:2"] == '{"event_id": "bad-\\xff"}'
    assert len(records[f"{relative}:3"]) == 2_000


@pytest.mark.parametrize(
    ("name", "content", "loaded", "quarantined"),
    [
        ("bom_first_line", b"\xef\xbb\xbf" + b"{L1}\n{L2}\n", ["e-1", "e-2"], []),
        ("bom_only_file", b"\xef\xbb\xbf", [], []),
        ("bom_only_line_then_records", b"\xef\xbb\xbf\n{L1}\n", ["e-1"], []),
        ("bare_cr", b"{L1}\r{L2}\r{L3}", ["e-1", "e-2", "e-3"], []),
        ("crlf", b"{L1}\r\n{L2}\r\n", ["e-1", "e-2"], []),
        ("mixed_line_ends", b"{L1}\r\n{L2}\r{L3}\nbroken\r{L4}", ["e-1", "e-2", "e-3", "e-4"], [4]),
    ],
)
def test_byte_order_mark_and_every_line_end_are_read(
    name: str, content: bytes, loaded: list[str], quarantined: list[int], warehouse_url: str, tmp_path: Path
) -> None:
    for i in range(1, 5):
        content = content.replace(f"{{L{i}}}".encode(), json.dumps(esp_event(f"e-{i}", DAY)).encode())
    path = tmp_path / loaders.ESP_EVENTS.folder / f"{DAY}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    result = load_day(warehouse_url, tmp_path, loaders.ESP_EVENTS)

    lines = query(warehouse_url, "select event_id, _source_line from raw.esp_events order by 2")
    assert [event_id for event_id, _ in lines] == loaded
    locations = [r[0] for r in query(warehouse_url, "select source_location from ops.quarantine")]
    assert locations == [f"esp/events/{DAY}.jsonl:{n}" for n in quarantined]
    assert result.received == len(loaded) + len(quarantined)
    if name == "mixed_line_ends":
        assert [line for _, line in lines] == [1, 2, 3, 5]


def test_crm_page_with_a_byte_order_mark_loads(warehouse_url: str, tmp_path: Path) -> None:
    write_crm_export(tmp_path, "2025-01-01", [[contact(1), contact(2)]])
    page = tmp_path / "crm/contacts/2025-01-01/page-00001.json"
    page.write_bytes(b"\xef\xbb\xbf" + page.read_bytes())
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        result = upserts.load_crm_contacts(conn, tmp_path)
    assert (result.loaded, result.quarantined) == (2, 0)
    assert scalar(warehouse_url, "select count(*) from ops.quarantine") == 0


def test_hostile_crm_contacts_are_quarantined_alone(warehouse_url: str, tmp_path: Path) -> None:
    write_crm_export(
        tmp_path,
        "2025-01-01",
        [
            [
                contact(1),
                contact(2, id=MEGABYTE_ID),
                contact(3, first_name="Ann\u0000"),
                contact(4, updated_at="9999-12-31T23:00:00-05:00"),
                contact(5, email="e" * 400 + "@example.com"),
                contact(6, last_name={"a": [1]}),
            ]
        ],
    )
    with loaders.connect(warehouse_url) as conn:
        loaders.ensure_tables(conn)
        result = upserts.load_crm_contacts(conn, tmp_path)
    assert (result.received, result.loaded, result.quarantined) == (6, 1, 5)
    reasons = dict(query(warehouse_url, "select source_location, reason from ops.quarantine"))
    page = "crm/contacts/2025-01-01/page-00001.json"
    assert reasons[f"{page}#results[1]"] == "'id' is 1000000 characters long, over the limit of 256"
    assert reasons[f"{page}#results[2]"].startswith("NUL character in 'first_name'")
    assert reasons[f"{page}#results[3]"].startswith("'updated_at' is out of range")
    assert reasons[f"{page}#results[4]"] == "'email' is 412 characters long, over the limit of 320"
    assert reasons[f"{page}#results[5]"] == "'last_name' should be a string, got dict"
    assert [r[0] for r in query(warehouse_url, "select contact_id from raw.crm_contacts")] == ["crm-0000001"]
