"""The Python normalisation (privacy/normalize.py) equals dbt's macros, run on PostgreSQL.

The macros of dbt/macros/normalize_identifiers.sql are rendered with Jinja (their only dbt call is
`var`, answered from dbt_project.yml) and evaluated on the test server against the Python ports, on
generated hostile strings: the token a loader stores must be the one of the value dbt would have built.
"""

from __future__ import annotations

import jinja2
import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_project.privacy import normalize

MACROS = normalize.PROJECT_ROOT / "dbt" / "macros" / "normalize_identifiers.sql"
FRAGMENTS = [
    "@", "@@", " at ", "(at)", "[at]", " AT ", "mailto:", "MAILTO:", "<", ">", ".", "..", "+", "00", "0",
    "gmail", "gmail.com", ".gmail.com", "@gmail", "@me", "me.com", "gmx.de", "yahoo", "Anna", "ANNA",
    "null", "none", "n/a", "noemail", "a.b", "x-y", "'", "%", "_", "\\", "\t", "\n", "\r", "\v", "\f",
    " ", "  ", "\u00a0", "\u2003", "\u0085", "\u1680", "É", "é", "İ", "ß", "ǅ", "Σ", "\u202e", "\ufeff",
    "٣", "１", "(555) 123-4567", "555.123.4567", "+44 20 7946 0958", "0044", "1234567890", "9876543210",
    "1111111111", "+1", "-", "(", ")", "com", "io", "de", "x",
]  # fmt: skip
hostile = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join),
    st.text(st.characters(exclude_characters="\x00", max_codepoint=0x2FFF), max_size=25),
    st.text(alphabet="0123456789 +-().", max_size=22),
)


@pytest.fixture(scope="module")
def macros() -> jinja2.runtime.TemplateModule:
    variables = yaml.safe_load(normalize.DBT_PROJECT_FILE.read_text())["vars"]
    environment = jinja2.Environment(extensions=["jinja2.ext.do"])
    environment.globals["var"] = variables.__getitem__
    return environment.from_string(MACROS.read_text()).module


@pytest.fixture(scope="module")
def evaluate(pg_server: str, macros):
    """SQL of the macros on one text value -> (email, is_valid_email(email), phone)."""
    email, phone, valid = (
        str(sql).replace("%", "%%")  # psycopg parameters: the macros' LIKE patterns' "%" doubled
        for sql in (macros.normalize_email("v"), macros.phone_e164("v"), macros.is_valid_email("email"))
    )
    query = (
        "with input as (select %s::text as v), "
        f"normalised as (select {email} as email, {phone} as phone from input) "
        f"select email, {valid}, phone from normalised"
    )
    with psycopg.connect(pg_server, autocommit=True) as conn:
        ctype = conn.execute("select datctype from pg_database where datname = current_database()").fetchone()
        assert ctype[0] == "C.UTF-8", f"the ports copy C.UTF-8's lower() and \\s, not {ctype[0]}"
        yield lambda value: conn.execute(query, (value,)).fetchone()


def python_side(value: str | None) -> tuple:
    email = normalize.normalize_email(value)
    return email, normalize.is_valid_email(email), normalize.phone_e164(value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=hostile)
def test_python_normalisation_equals_the_sql_macros(evaluate, value: str) -> None:
    assert python_side(value) == tuple(evaluate(value))


@pytest.mark.parametrize(
    ("raw", "email", "valid", "phone"),
    [
        (None, None, False, None),
        ("  Anna (at) Example.COM ", "anna@example.com", True, None),
        ("mailto:<bob@@shop.io>", "<bob@shop.io", False, None),  # "^<" only at the very start
        ("<mailto:bob@@shop.io>", "mailto:bob@shop.io", False, None),
        ("MAILTO:bob@@shop.io>", "bob@shop.io", True, None),
        ("annagmail.com", "anna@gmail.com", True, None),
        ("anna.gmail.com", "anna@gmail.com", True, None),
        ("anna@gmail", "anna@gmail.com", True, None),
        ("gmail.com", "gmail.com", False, None),
        ("   ", None, False, None),
        ("(555) 123-4567", "(555)123-4567", False, "+15551234567"),
        ("+44 20 7946 0958", "+442079460958", False, "+442079460958"),
        ("0044 20 7946 0958", "00442079460958", False, "+442079460958"),
        ("1-555-123-4567", "1-555-123-4567", False, "+15551234567"),
        ("12345", "12345", False, None),
    ],
)
def test_known_values_on_both_sides(evaluate, raw, email, valid, phone) -> None:
    assert python_side(raw) == (email, valid, phone)
    assert tuple(evaluate(raw)) == (email, valid, phone)


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("+15555555555", "placeholder phone (one repeated digit)"),
        ("+11111111111", "placeholder phone (one repeated digit)"),
        ("+15551234567", None),
        ("+11234567890", "placeholder phone (counting sequence)"),
        ("+449876543210", "placeholder phone (counting sequence)"),
        (None, None),
    ],
)
def test_placeholder_phones_as_the_identity_checks_read_them(pg_server: str, phone, reason) -> None:
    with psycopg.connect(pg_server) as conn:
        sql_reason = conn.execute(  # the two checks of int_identity__identifier_checks
            r"select case when %(p)s ~ '^\+\d?(\d)\1{7,}$' then 'placeholder phone (one repeated digit)' "
            r"when %(p)s ~ '(0123456789|1234567890|9876543210)$' "
            "then 'placeholder phone (counting sequence)' end",
            {"p": phone},
        ).fetchone()[0]
    assert normalize.phone_placeholder_reason(phone) == sql_reason == reason


def test_placeholder_local_parts_come_from_the_dbt_var() -> None:
    assert normalize.is_placeholder_email("noemail@shop.io")
    assert normalize.is_placeholder_email("n/a@x.com")
    assert not normalize.is_placeholder_email("anna@shop.io")
    assert not normalize.is_placeholder_email(None)
