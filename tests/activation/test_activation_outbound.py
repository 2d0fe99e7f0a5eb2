"""Outbound limits: hostile text from the warehouse never reaches the ESP unbounded or with controls."""

from __future__ import annotations

import unicodedata

from activation_world import list_emails, make_client, sandbox, world  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_project.activation.client import ProfileRecord
from dagster_project.activation.outbound import (
    FORBIDDEN,
    INVISIBLE,
    KLAVIYO_LIMITS,
    MAILCHIMP_LIMITS,
    WHITESPACE_LIKE,
    clean_text,
    prepare_records,
    sanitise_record,
)
from dagster_project.activation.sync import run_sync

HOSTILE = [
    "\x00",
    "\t",
    "\n",
    "\r\n",
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\x9b2J",
    "\x7f",
    "\x85",
    "\u202e",
    "\u202d",
    "\u2066",
    "\u200f",
    "\u200b",
    "\u2028",
    "\ufeff",
    "\ud800",
    "e\u0301",
    " ",
    "名",
    "😀",
]
hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=()), max_size=8)),
    max_size=60,
).map("".join)


def visible_only(text: str) -> bool:
    """No C0/C1 control (tabs and newlines included), surrogate, bidi or zero-width character."""
    return not any(
        unicodedata.category(c) in ("Cc", "Cs")
        or unicodedata.bidirectional(c) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI")
        or c in "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\ufeff\u061c"
        for c in text
    )


@settings(max_examples=150, deadline=None)
@given(hostile_text, st.integers(min_value=1, max_value=300))
def test_clean_text_is_always_bounded_visible_one_line_and_stable(value: str, limit: int):
    cleaned = clean_text(value, limit)
    assert len(cleaned) <= limit
    assert visible_only(cleaned)
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert clean_text(cleaned, limit) == cleaned


@settings(max_examples=60, deadline=None)
@given(hostile_text, hostile_text, st.dictionaries(hostile_text, hostile_text, max_size=4))
def test_every_field_of_a_sanitised_record_is_within_the_esps_limits(first, last, extra):
    for limits in (KLAVIYO_LIMITS, MAILCHIMP_LIMITS):
        record = ProfileRecord("cust-1", "ok@example.com", first, last, {"sendwise_segment": first, **extra})
        clean = sanitise_record(record, limits)
        assert isinstance(clean, ProfileRecord)
        assert len(clean.first_name) <= limits.name and len(clean.last_name) <= limits.name
        assert visible_only(clean.first_name + clean.last_name)
        for name, value in clean.properties.items():
            assert len(name) <= limits.property_name and visible_only(name)
            assert len(value) <= limits.text_property and visible_only(value)


def test_the_forbidden_pattern_is_exactly_controls_surrogates_invisibles_and_line_breaks():
    """Every code point: the one regex equals the definition by Unicode category."""
    by_category = {
        code
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cs") or chr(code) in INVISIBLE + WHITESPACE_LIKE
    }
    by_pattern = {code for code in range(0x110000) if FORBIDDEN.match(chr(code))}
    assert by_pattern == by_category
    assert len(by_category) == 65 + 2048 + len(INVISIBLE) + 2  # Cc, Cs, invisibles, U+2028/9 (the rest is Cc)


def test_the_regression_corpus_of_issue_11():
    assert clean_text("A" * 1_000_000, 255) == "A" * 255
    assert clean_text("\u202eevil\u202c name", 255) == "evil name"
    assert clean_text("\x1b[31mred\x1b[0m\tand\nnew\r\nline", 255) == "red and new line"
    assert clean_text("Jos\u0065\u0301", 255) == "José"  # NFC: one character, not two
    record = ProfileRecord("k", "a@example.com", "A" * 1_000_000, None, {"n": ["x\x00y"] * 1_000})
    clean = sanitise_record(record, KLAVIYO_LIMITS)
    assert len(clean.first_name) == 255 and clean.properties["n"] == ["xy"] * 100
    ready, refused = prepare_records(
        [
            ProfileRecord("k1", "two@@example.com"),
            ProfileRecord("k2", "tab\t@example.com"),
            ProfileRecord("k3", ("x" * 250) + "@example.com"),
            ProfileRecord("k4", "fine@example.com", "\u202eBob"),
        ],
        MAILCHIMP_LIMITS,
    )
    assert [r.first_name for r in ready] == ["Bob"]
    reasons = {o.customer_key: o.reason for o in refused}
    assert set(reasons) == {"k1", "k2", "k3"} and all(o.status == "rejected" for o in refused)
    assert "invalid email" in reasons["k1"] and "control" in reasons["k2"] and "254" in reasons["k3"]


def test_a_sync_sends_hostile_names_clean_and_logs_unsendable_records(world, sandbox):  # noqa: F811
    named, unsendable = (
        key
        for (key,) in world.conn.execute(
            "select customer_key from marts.dim_customers where is_contactable and is_email_valid "
            "and subscription_status = 'subscribed' order by 1 limit 2"
        ).fetchall()
    )
    world.conn.execute(
        "update marts.dim_customers set first_name = %s, last_name = %s where customer_key = %s",
        ("\u202e" + "Ann\x1b[1m\t" * 300_000, "Lee\nDROP", named),
    )
    world.set_email(unsendable, "bad\u202e@example.com")
    world.conn.commit()
    result = run_sync(world.conn, make_client(sandbox), "sandbox:sendwise", "sendwise")
    profile = next(p for p in sandbox.store.profiles.values() if p["external_id"] == named)
    assert profile["first_name"] == ("Ann " * 64)[:255].rstrip() and profile["last_name"] == "Lee DROP"
    assert not any(p["external_id"] == unsendable for p in sandbox.store.profiles.values())
    logged = world.conn.execute(
        "select status, reason from activation.esp_sync_outcomes where run_id = %s and customer_key = %s",
        (result.run_id, unsendable),
    ).fetchall()
    assert logged == [("rejected", "not sent: email contains control, invisible or space characters")]
    assert result.rejected == 1 and result.added == len(world.contactable_emails()) - 1
