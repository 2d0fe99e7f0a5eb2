"""Hypothesis strategies of hostile source records mixed into valid ones, and the accounting checks run
on each generated source (shared by test_ingestion_properties.py and bench/fuzz_ingestion.py).

Each `check_*` loads one generated source into a warehouse that it first resets, then asserts: no
crash, received = loaded + quarantined, every quarantine row has a reason and a location, every
untouched valid record landed, and a rerun changes nothing. It adds its figures to `TALLY`.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from hypothesis import strategies as st
from ingestion_helpers import contact, esp_event, web_event, write_crm_export

from dagster_project.ingestion import loaders, upserts
from dagster_project.privacy import field_crypto
from dagster_project.warehouse import connection

DAY = "2025-01-02"
TALLY: Counter[str] = Counter()
"""records tried / loaded / quarantined over every check run in this process."""

HOSTILE_CHARS = "\x00\u202e\x1b\t\n\r\ufeff\u2028\ud800é'\";\\"
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(HOSTILE_CHARS) | st.characters(), max_size=20),
    st.integers(240, 9_000).map(lambda n: "x" * n),
    st.sampled_from(["", " ", "'); drop table raw.web_events; --", "null", "\u0000"]),
)
hostile_timestamp = st.one_of(
    st.sampled_from(
        [
            "infinity", "-infinity", "9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59+00:00", "2025-13-01T00:00:00Z", "02/01/2025", "", "2025-01-02",
            "2025-01-02T10:00:00", "10000-01-01T00:00:00Z",
        ]
    ),
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat),
)  # fmt: skip
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), hostile_text
)


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


json_value = st.one_of(
    st.recursive(
        json_scalar,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
        max_leaves=8,
    ),
    st.integers(20, 600).map(nested),
)


@st.composite
def mutated(draw: st.DrawFn, record: dict, timestamp_keys: tuple[str, ...]) -> dict:
    """`record` with one to three keys replaced by hostile values, removed, or added."""
    record = dict(record)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(record)) | hostile_text)
        action = draw(st.sampled_from(["value", "timestamp", "delete"]))
        if action == "delete":
            record.pop(key, None)
        elif action == "timestamp" or key in timestamp_keys:
            record[key] = draw(hostile_timestamp)
        else:
            record[key] = draw(json_value)
    return record


def encode(record: dict, ascii_only: bool) -> bytes:
    """JSON bytes; non-ASCII text raw (lone surrogates become invalid UTF-8) or as escapes."""
    return json.dumps(record, ensure_ascii=ascii_only).encode(errors="surrogatepass")


@st.composite
def jsonl_lines(draw: st.DrawFn, make_valid, timestamp_keys: tuple[str, ...]) -> tuple[list[bytes], set[str]]:
    """Lines of one day file (with their ends) and the ids of the untouched valid records."""
    lines, valid_ids = [], set()
    for i in range(draw(st.integers(1, 12))):
        record = make_valid(f"id-{i}", DAY)
        kind = draw(st.sampled_from(["valid", "valid", "mutated", "binary", "utf16", "bom", "cut"]))
        if kind in ("valid", "bom"):
            line = encode(record, True)
            valid_ids.add(f"id-{i}")
            line = b"\xef\xbb\xbf" + line if kind == "bom" else line
        elif kind == "mutated":
            line = encode(draw(mutated(record, timestamp_keys)), draw(st.booleans()))
        elif kind == "binary":  # never blank, never a line end
            line = b"\x01" + draw(st.binary(max_size=40)).replace(b"\n", b"").replace(b"\r", b"")
        elif kind == "utf16":
            line = encode(record, True).decode().encode("utf-16")
        else:
            full = encode(record, True)
            line = full[: draw(st.integers(1, len(full) - 1))]
        lines.append(line + draw(st.sampled_from([b"\n", b"\r\n", b"\r"])))
    return lines, valid_ids


web_lines = jsonl_lines(web_event, ("timestamp", "receivedAt"))
esp_lines = jsonl_lines(esp_event, ("timestamp",))


def reset(url: str, *statements: str) -> None:
    with psycopg.connect(connection.libpq_url(url), autocommit=True) as conn:
        conn.execute("truncate ops.quarantine, ops.load_log, ops.load_state")
        for statement in statements:
            conn.execute(statement)


def snapshot(url: str, table: str, key: str) -> tuple[list, list]:
    """Raw rows (without load times and batch ids; ciphertexts decrypted, as they differ on every
    encryption) and quarantine entries, in a stable order."""
    with psycopg.connect(connection.libpq_url(url)) as conn:
        rows = conn.execute(
            f"select to_jsonb(t) - '_loaded_at' - '_batch_id' from raw.{table} t order by {key}, 1"
        ).fetchall()
        quarantine = conn.execute(
            "select source_location, source_offset, reason, record from ops.quarantine order by 1, 3"
        ).fetchall()
    rows = [(_decrypted(row),) for (row,) in rows]
    return rows, quarantine


def _decrypted(value):
    """A JSON document with every *_encrypted string replaced by its plaintext."""
    if isinstance(value, dict):
        cipher = field_crypto.load_cipher()
        encrypted = {k for k, v in value.items() if k.endswith("_encrypted") and isinstance(v, str)}
        return {k: cipher.decrypt(v) if k in encrypted else _decrypted(v) for k, v in value.items()}
    return value


def assert_quarantine_rows_located(quarantine: list, pattern: str) -> None:
    for location, _, reason, record in quarantine:
        assert reason and record is not None, location
        assert location.startswith(pattern), location


def check_event_file(
    url: str, source_dir: Path, stream: loaders.EventStream, lines: list[bytes], valid_ids: set[str]
) -> None:
    reset(url, f"truncate raw.{stream.table}")
    path = source_dir / stream.folder / f"{DAY}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    key = "message_id" if stream is loaders.WEB_EVENTS else "event_id"
    with loaders.connect(url) as conn:
        result = loaders.load_event_partition(conn, stream, source_dir, DAY, force=True)
        first = snapshot(url, stream.table, key)
        again = loaders.load_event_partition(conn, stream, source_dir, DAY, force=True)
    assert result.status == "success"
    assert result.received == len(lines) == result.loaded + result.quarantined
    rows, quarantine = first
    assert len(rows) == result.loaded and len(quarantine) == result.quarantined
    assert_quarantine_rows_located(quarantine, f"{stream.folder}/{DAY}.jsonl:")
    assert all(offset is not None for _, offset, _, _ in quarantine)
    assert valid_ids <= {row[0][key] for row in rows}
    assert (again.received, again.loaded) == (result.received, result.loaded)
    assert snapshot(url, stream.table, key) == first
    tally(result)


def tally(result: loaders.LoadResult) -> None:
    TALLY.update(tried=result.received, loaded=result.loaded, quarantined=result.quarantined)


@st.composite
def crm_pages(draw: st.DrawFn) -> tuple[list[list[dict]], set[str], list[str]]:
    """Pages of one export, the ids of the untouched valid contacts, and per page how to spoil it."""
    pages, valid_ids, spoil = [], set(), []
    for page in range(draw(st.integers(1, 3))):
        results = []
        for i in range(draw(st.integers(0, 5))):
            record = contact(page * 10 + i)
            if draw(st.booleans()):
                results.append(record)
                valid_ids.add(record["id"])
            else:
                results.append(draw(mutated(record, ("created_at", "updated_at"))))
        pages.append(results)
        spoil.append(draw(st.sampled_from(["none", "none", "bom", "cut", "not_a_page"])))
    return pages, valid_ids, spoil


def is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def check_crm_export(
    url: str, source_dir: Path, pages: list[list[dict]], valid_ids: set[str], spoil: list[str]
) -> None:
    reset(url, "truncate raw.crm_contacts")
    shutil.rmtree(source_dir / "crm", ignore_errors=True)
    write_crm_export(source_dir, "2025-01-01", pages)
    for number, how in enumerate(spoil, 1):
        page = source_dir / f"crm/contacts/2025-01-01/page-{number:05d}.json"
        if not is_json(page.read_bytes()):  # e.g. a lone surrogate escape (json.dumps writes them)
            spoil[number - 1] = "invalid"
        elif how == "bom":
            page.write_bytes(b"\xef\xbb\xbf" + page.read_bytes())
        elif how == "cut":
            page.write_bytes(page.read_bytes()[:-5])
        elif how == "not_a_page":
            page.write_text("[1, 2]")
    unreadable = sum(how in ("cut", "not_a_page", "invalid") for how in spoil)
    with loaders.connect(url) as conn:
        result = upserts.load_crm_contacts(conn, source_dir)
        first = snapshot(url, "crm_contacts", "contact_id")
        again = upserts.load_crm_contacts(conn, source_dir)
    readable = [results for results, how in zip(pages, spoil, strict=True) if how in ("none", "bom")]
    assert result.received == sum(map(len, readable)) + unreadable == result.loaded + result.quarantined
    assert result.status == ("partial" if unreadable else "success")
    rows, quarantine = first
    assert len(quarantine) == result.quarantined
    assert_quarantine_rows_located(quarantine, "crm/contacts/2025-01-01/page-")
    landed = {row[0]["contact_id"] for row in rows}
    spoiled = {c["id"] for results, how in zip(pages, spoil, strict=True) if how not in ("none", "bom")
               for c in results if isinstance(c.get("id"), str)}  # fmt: skip
    assert valid_ids - spoiled <= landed
    assert again.received == (result.received if unreadable else 0)  # a partial export is read again
    assert snapshot(url, "crm_contacts", "contact_id")[0] == rows
    tally(result)


SHOP_TIMESTAMPS = st.one_of(
    st.sampled_from(
        ["infinity", "-infinity", "10000-01-01 04:00+00", "9999-12-31 23:00-05", "0001-01-01 00:00+00"]
    ),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.isoformat() + "+00"
    ),
    st.just((datetime.now(UTC) + timedelta(days=400)).isoformat()),
)
shop_names = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8),
    st.integers(8_000, 9_000).map(lambda n: "f" * n),
)
shop_rows = st.lists(
    st.tuples(shop_names, st.one_of(st.none(), SHOP_TIMESTAMPS), st.one_of(st.none(), SHOP_TIMESTAMPS)),
    min_size=1,
    max_size=10,
)


def check_shop_table(url: str, shop_url: str, rows: list[tuple], fast_path: bool) -> None:
    """Rows (first_name, created_at, updated_at) of shop.customers, customer_id = position."""
    reset(url, "truncate raw.shop_customers")
    with psycopg.connect(connection.libpq_url(shop_url), autocommit=True) as shop:
        shop.execute("truncate shop.customers")
        for key, (name, created, updated) in enumerate(rows, 1):
            shop.execute(
                "insert into shop.customers (customer_id, first_name, created_at, updated_at) "
                "values (%s, %s, %s::timestamptz, %s::timestamptz)",
                (key, name, created, updated),
            )
    table = loaders.SHOP_TABLES["customers"]
    with loaders.connect(url) as conn:
        result = upserts.load_shop_table(conn, shop_url, table, fast_path=fast_path)
        first = snapshot(url, "shop_customers", "customer_id")
        upserts.load_shop_table(conn, shop_url, table, fast_path=fast_path)
    assert result.received == len(rows) == result.loaded + result.quarantined
    raw, quarantine = first
    assert len(raw) == result.loaded and len(quarantine) == result.quarantined
    assert_quarantine_rows_located(quarantine, "shop.customers:customer_id=")
    assert snapshot(url, "shop_customers", "customer_id")[0] == raw
    assert len(snapshot(url, "shop_customers", "customer_id")[1]) == len(quarantine)
    tally(result)
