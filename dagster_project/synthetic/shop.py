"""The shop's OLTP database (schema `shop`): catalogue, customers, orders and order items.

Rows are written with COPY (psycopg 3); later changes are real UPDATEs with a newer `updated_at`,
the way an application database changes under an incremental extractor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import psycopg

from dagster_project.synthetic import binary_copy, vocab
from dagster_project.synthetic.clock import DAY_MS, HOUR_MS
from dagster_project.synthetic.state import WorldState
from dagster_project.synthetic.traits import (
    COUNTRY_CODES,
    LAPSING,
    NEW_CUSTOMER,
    People,
    behaviour_array,
    last_name_text,
    phone_digits,
)

PRODUCTS = 300
CURRENCY = "USD"
STATUSES = ("completed", "cancelled", "refunded")
COMPLETED, CANCELLED, REFUNDED = range(3)

DDL = """
drop schema if exists shop cascade;
create schema shop;
create table shop.customers (
    customer_id bigint not null, email text, first_name text, last_name text, phone text,
    accepts_marketing boolean, created_at timestamptz not null, updated_at timestamptz not null);
create table shop.products (
    product_id bigint not null, sku text not null, name text not null, category text not null,
    price numeric(10,2) not null, created_at timestamptz not null, updated_at timestamptz not null);
create table shop.orders (
    order_id bigint not null, customer_id bigint not null, status text not null
        check (status in ('completed', 'cancelled', 'refunded')),
    order_total numeric(12,2) not null, currency text not null, ordered_at timestamptz not null,
    created_at timestamptz not null, updated_at timestamptz not null);
create table shop.order_items (
    order_item_id bigint not null, order_id bigint not null, product_id bigint not null,
    quantity int not null, unit_price numeric(10,2) not null, created_at timestamptz not null,
    updated_at timestamptz not null);
"""
KEYS_DDL = """
alter table shop.customers add primary key (customer_id);
alter table shop.products add primary key (product_id);
alter table shop.orders add primary key (order_id);
alter table shop.order_items add primary key (order_item_id);
create index on shop.customers (updated_at);
create index on shop.products (updated_at);
create index on shop.orders (updated_at);
create index on shop.order_items (updated_at);
"""
"""Keys and indexes, added once the history is loaded (building them after a bulk load is faster)."""
CUSTOMER_COLUMNS = (
    "customer_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "accepts_marketing",
    "created_at",
    "updated_at",
)
PRODUCT_COLUMNS = ("product_id", "sku", "name", "category", "price", "created_at", "updated_at")
ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "status",
    "order_total",
    "currency",
    "ordered_at",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "order_item_id",
    "order_id",
    "product_id",
    "quantity",
    "unit_price",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class Catalogue:
    product_ids: np.ndarray
    categories: np.ndarray  # index into vocab.CATEGORIES
    names: list[str]
    skus: list[str]
    created_ms: np.ndarray

    @cached_property
    def paths(self) -> list[str]:
        """The product pages' URL paths."""
        return [f"/products/{sku.lower()}" for sku in self.skus]

    @cached_property
    def texts(self) -> list[tuple[str, str, str]]:
        """(product_id, sku, category) of each product as text."""
        return [
            (str(product_id), sku, vocab.CATEGORIES[category])
            for product_id, sku, category in zip(
                self.product_ids.tolist(), self.skus, self.categories.tolist(), strict=True
            )
        ]

    def category(self, product_index: int) -> str:
        return vocab.CATEGORIES[self.categories[product_index]]


def build_catalogue(rng: np.random.Generator, start_ms: int) -> tuple[Catalogue, np.ndarray]:
    """The product catalogue and its initial prices in cents."""
    categories = rng.integers(0, len(vocab.CATEGORIES), PRODUCTS)
    base = np.array(vocab.CATEGORY_PRICE)[categories]
    prices = np.round(base * rng.lognormal(0.0, 0.45, PRODUCTS) * 100).astype(np.int64) // 100 * 100 - 1
    names, skus = [], []
    for i, category in enumerate(categories.tolist()):
        nouns = vocab.PRODUCT_NOUNS[vocab.CATEGORIES[category]]
        names.append(f"{vocab.PRODUCT_WORDS[(i * 7) % len(vocab.PRODUCT_WORDS)]} {nouns[i % len(nouns)]}")
        skus.append(f"SKU-{vocab.CATEGORIES[category][:3].upper()}-{i + 1:05d}")
    created = start_ms - rng.integers(30, 800, PRODUCTS) * DAY_MS
    catalogue = Catalogue(np.arange(1, PRODUCTS + 1, dtype=np.int64), categories, names, skus, created)
    return catalogue, np.maximum(prices, 199)


def product_rows(catalogue: Catalogue, state: WorldState, indices: np.ndarray) -> Columns:
    return [
        _integers(catalogue.product_ids[indices]),
        _text([catalogue.skus[i] for i in indices.tolist()]),
        _text([catalogue.names[i] for i in indices.tolist()]),
        _text([catalogue.category(i) for i in indices.tolist()]),
        _money(state.product_price_cents[indices]),
        _timestamps(catalogue.created_ms[indices]),
        _timestamps(state.product_updated_ms[indices]),
    ]


# --- COPY text: rows are built column-wise (numpy and C-level joins), not cell by cell -------------

Columns = list[list[str]]
"""Rows as one list of COPY-text cells per column (NULL as \\N)."""
_CENTS = [f"{c:02d}" for c in range(100)]
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _integers(values: np.ndarray) -> list[str]:
    return list(map(str, np.asarray(values).tolist()))


def _money(cents: np.ndarray) -> list[str]:
    cents = np.asarray(cents, dtype=np.int64)
    return [
        f"{whole}.{_CENTS[rest]}"
        for whole, rest in zip((cents // 100).tolist(), (cents % 100).tolist(), strict=True)
    ]


def _timestamps(ms: np.ndarray) -> list[str]:
    # the same moments as clock.iso, written with "Z" (which Postgres reads as +00:00)
    text = np.datetime_as_string(
        np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"), unit="ms", timezone="UTC"
    )
    return text.tolist()


def _booleans(values: np.ndarray) -> list[str]:
    return np.where(np.asarray(values, dtype=bool), "t", "f").tolist()


def _text(values: Sequence[str | None]) -> list[str]:
    """Free text escaped for COPY's text format; None becomes NULL."""
    return [r"\N" if v is None else v.translate(_ESCAPES) for v in values]


def shop_email(people: People, person: int, canonical: str) -> str:
    """The email as the shop stored it: mixed case, padded, invalid, or the test account's raw value."""
    if person >= people.customers:
        return vocab.TEST_EMAILS[(person - people.customers) % len(vocab.TEST_EMAILS)]
    style = people.shop_email_style[person]
    local, domain = canonical.split("@")
    if style == 1:
        return f"{local.title()}@{domain.capitalize()}"
    if style == 2:
        return f"  {canonical} "
    if style == 3:
        return (f"{local}@{domain.split('.')[0]}", f"{local}{domain}", f"{local}@@{domain}")[person % 3]
    return canonical


def shop_phone(people: People, person: int, version: int) -> str | None:
    if person >= people.customers:
        return vocab.PLACEHOLDER_PHONE_SHOP
    style = people.shop_phone_style[person]
    if style == 2:
        return None
    if style == 3:
        return vocab.PLACEHOLDER_PHONE_SHOP
    digits = phone_digits(people, person, version)
    code = COUNTRY_CODES[people.timezone[person]]
    if style == 1:
        return digits
    if code == 1:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return f"+{code} {digits}"


def customer_rows(people: People, state: WorldState, persons: np.ndarray, emails: Sequence[str]) -> Columns:
    firsts, lasts, shop_emails, phones = [], [], [], []
    for k, p in enumerate(persons.tolist()):
        if p >= people.customers:
            firsts.append("Test")
            lasts.append(("User", "Account", "QA")[p % 3])
        else:
            firsts.append(vocab.FIRST_NAMES[people.first_name[p]])
            lasts.append(last_name_text(people, p, int(state.customer_name_version[p])))
        shop_emails.append(shop_email(people, p, emails[k]))
        phones.append(shop_phone(people, p, int(state.customer_phone_version[p])))
    return [
        _integers(people.customer_ids(persons)),
        _text(shop_emails),
        _text(firsts),
        _text(lasts),
        _text(phones),
        _booleans(state.accepts_marketing[persons]),
        _timestamps(people.registered_ms[persons]),
        _timestamps(state.customer_updated_ms[persons]),
    ]


@dataclass
class OrderBatch:
    order_ids: np.ndarray
    persons: np.ndarray
    ordered_ms: np.ndarray
    status: np.ndarray  # index into STATUSES
    updated_ms: np.ndarray
    total_cents: np.ndarray
    item_ids: np.ndarray
    item_order: np.ndarray  # index into the batch's orders
    item_product: np.ndarray  # product index
    item_quantity: np.ndarray
    item_unit_cents: np.ndarray

    def __len__(self) -> int:
        return len(self.order_ids)

    @cached_property
    def item_start(self) -> np.ndarray:
        """Items of order k are item_start[k] .. item_start[k + 1] - 1 (items are grouped by order)."""
        return np.searchsorted(self.item_order, np.arange(len(self.order_ids) + 1))

    def order_rows(self, people: People) -> list[binary_copy.Cells]:
        """Binary COPY cells for ORDER_COLUMNS."""
        ordered = binary_copy.timestamptz(self.ordered_ms)
        return [
            binary_copy.int8(self.order_ids),
            binary_copy.int8(people.customer_ids(self.persons)),
            binary_copy.text_choice(self.status, STATUSES),
            binary_copy.money(self.total_cents),
            binary_copy.text_choice(np.zeros(len(self), np.int64), (CURRENCY,)),
            ordered,
            ordered,
            binary_copy.timestamptz(self.updated_ms),
        ]

    def item_rows(self, catalogue: Catalogue) -> list[binary_copy.Cells]:
        """Binary COPY cells for ITEM_COLUMNS."""
        created = binary_copy.timestamptz(self.ordered_ms[self.item_order])
        return [
            binary_copy.int8(self.item_ids),
            binary_copy.int8(self.order_ids[self.item_order]),
            binary_copy.int8(catalogue.product_ids[self.item_product]),
            binary_copy.int4(self.item_quantity),
            binary_copy.money(self.item_unit_cents),
            created,
            created,
        ]


def make_orders(
    rng: np.random.Generator,
    people: People,
    state: WorldState,
    persons: np.ndarray,
    ordered_ms: np.ndarray,
    written_until_ms: int,
) -> OrderBatch:
    """Orders for `persons` at `ordered_ms`: items, totals and status.

    Refunds come days later: those due before `written_until_ms` are already in the row, the rest are
    kept in the state and applied as UPDATEs on their day.
    """
    order_sort = np.lexsort((persons, ordered_ms))
    persons, ordered_ms = persons[order_sort], ordered_ms[order_sort]
    n = len(persons)
    order_ids = state.take_order_ids(n)
    archetype = people.archetype[persons]
    n_items = 1 + rng.poisson(behaviour_array("extra_items")[archetype])
    item_ids = state.take_order_item_ids(int(n_items.sum()))
    item_order = np.repeat(np.arange(n), n_items)
    ranked = np.argsort(state.product_price_cents, kind="stable")
    quantile = np.clip(rng.normal(behaviour_array("price_quantile")[archetype][item_order], 0.15), 0, 0.999)
    item_product = ranked[(quantile * len(ranked)).astype(np.int64)]
    item_quantity = 1 + rng.binomial(2, 0.15, len(item_order))
    discount = behaviour_array("discount")[archetype][item_order] * rng.uniform(0.5, 1.0, len(item_order))
    item_unit_cents = np.round(state.product_price_cents[item_product] * (1 - discount)).astype(np.int64)
    total_cents = np.bincount(item_order, weights=item_unit_cents * item_quantity, minlength=n).astype(
        np.int64
    )

    cancelled = rng.random(n) < behaviour_array("cancel_rate")[archetype]
    refunded = ~cancelled & (rng.random(n) < behaviour_array("refund_rate")[archetype])
    refund_ms = ordered_ms + rng.integers(2 * DAY_MS, 20 * DAY_MS, n)
    updated_ms = ordered_ms.copy()
    cancel_ms = np.minimum(ordered_ms + rng.integers(300_000, HOUR_MS, n), written_until_ms - 1)
    updated_ms[cancelled] = cancel_ms[cancelled]
    status = np.where(cancelled, CANCELLED, COMPLETED).astype(np.int8)
    refund_now = refunded & (refund_ms < written_until_ms)
    status[refund_now] = REFUNDED
    updated_ms[refund_now] = refund_ms[refund_now]
    later = refunded & ~refund_now
    state.refund_order_ids = np.concatenate([state.refund_order_ids, order_ids[later]])
    state.refund_due_ms = np.concatenate([state.refund_due_ms, refund_ms[later]])

    completed = ~cancelled
    np.add.at(state.completed_orders, persons[completed], 1)
    np.maximum.at(state.last_order_ms, persons[completed], ordered_ms[completed])
    return OrderBatch(
        order_ids,
        persons,
        ordered_ms,
        status,
        updated_ms,
        total_cents,
        item_ids,
        item_order,
        item_product,
        item_quantity,
        item_unit_cents,
    )


HISTORY_CHUNK = 50_000  # people per batch of history orders (bounds memory for big worlds)


def history_orders(rng: np.random.Generator, people: People, state: WorldState) -> Iterator[OrderBatch]:
    """Orders placed before the world starts (up to a year back), so recency and frequency mean something."""
    start = people.start_ms
    for first in range(0, people.size, HISTORY_CHUNK):
        chunk = np.arange(first, min(first + HISTORY_CHUNK, people.size))
        registered = people.registered_ms[chunk] < start
        since = np.maximum(people.registered_ms[chunk], start - 365 * DAY_MS)
        tenure_days = np.where(registered, (start - since) / DAY_MS, 0)
        rate = behaviour_array("history_orders_per_30d")[people.archetype[chunk]] * people.spend[chunk]
        counts = rng.poisson(rate * tenure_days / 30)
        persons = np.repeat(chunk, counts)
        lo = np.repeat(since, counts)
        # lapsing customers stopped ordering 2-5 months before the start
        stopped = start - rng.integers(60, 150, len(persons)) * DAY_MS
        hi = np.maximum(np.where(people.archetype[persons] == LAPSING, stopped, start), lo + 1)
        ordered_ms = lo + (rng.random(len(persons)) * (hi - lo)).astype(np.int64)
        yield make_orders(rng, people, state, persons, ordered_ms, start)


def day_orders(rng: np.random.Generator, people: People, state: WorldState, day_start: int) -> OrderBatch:
    """Orders placed on one day, plus the first order of customers who registered that day."""
    day_end = day_start + DAY_MS
    day_number = (day_start - people.start_ms) / DAY_MS
    registered = people.registered_ms < day_start
    rate = behaviour_array("window_orders_per_30d")[people.archetype] * people.spend / 30
    rate = np.where(people.archetype == LAPSING, rate * np.exp(-day_number / 45), rate)
    counts = np.where(registered, rng.poisson(rate), 0)
    persons = np.repeat(np.arange(people.size), counts)
    ordered_ms = day_start + HOUR_MS + rng.integers(0, DAY_MS - 2 * HOUR_MS, len(persons))
    joined = np.flatnonzero((people.registered_ms >= day_start) & (people.registered_ms < day_end))
    first_buyers = joined[(people.archetype[joined] == NEW_CUSTOMER) & (rng.random(len(joined)) < 0.7)]
    first_ms = np.minimum(
        people.registered_ms[first_buyers] + rng.integers(300_000, 2 * HOUR_MS, len(first_buyers)),
        day_end - 60_000,
    )
    return make_orders(
        rng,
        people,
        state,
        np.concatenate([persons, first_buyers]),
        np.concatenate([ordered_ms, first_ms]),
        day_end,
    )


def due_refunds(state: WorldState, day_start: int) -> tuple[np.ndarray, np.ndarray]:
    """Refunds falling on this day (removed from the state)."""
    due = (state.refund_due_ms >= day_start) & (state.refund_due_ms < day_start + DAY_MS)
    ids, at = state.refund_order_ids[due], state.refund_due_ms[due]
    state.refund_order_ids, state.refund_due_ms = state.refund_order_ids[~due], state.refund_due_ms[~due]
    return ids, at


# --- database writes ---------------------------------------------------------------------------


def reset_schema(conn: psycopg.Connection) -> None:
    """Empty tables without keys: `add_keys` follows the bulk load of the history."""
    conn.execute(DDL)


def add_keys(conn: psycopg.Connection) -> None:
    conn.execute(KEYS_DDL)


COPY_BATCH = 20_000  # rows per write


def copy_rows(conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Columns) -> int:
    """COPY column-wise text rows into `table`, a batch of rows per write."""
    count = len(rows[0]) if rows else 0
    with conn.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for first in range(0, count, COPY_BATCH):
            batch = zip(*(column[first : first + COPY_BATCH] for column in rows), strict=True)
            copy.write("".join([f"{line}\n" for line in map("\t".join, batch)]).encode())
    return count


def copy_orders(conn: psycopg.Connection, orders: OrderBatch, catalogue: Catalogue, people: People) -> None:
    binary_copy.copy(conn, "shop.orders", ORDER_COLUMNS, orders.order_rows(people))
    binary_copy.copy(conn, "shop.order_items", ITEM_COLUMNS, orders.item_rows(catalogue))


def upsert_rows(conn: psycopg.Connection, table: str, key: str, columns: Sequence[str], rows: Columns) -> int:
    """Insert or update rows by primary key (staged through a temporary table and COPY)."""
    stage = f"stage_{table.split('.')[-1]}"
    conn.execute(f"create temp table if not exists {stage} (like {table}) on commit drop")
    count = copy_rows(conn, stage, columns, rows)
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    conn.execute(
        f"insert into {table} ({', '.join(columns)}) select {', '.join(columns)} from {stage} "
        f"on conflict ({key}) do update set {assignments}"
    )
    conn.execute(f"truncate {stage}")
    return count


def apply_refunds(conn: psycopg.Connection, order_ids: np.ndarray, at_ms: np.ndarray) -> int:
    if not len(order_ids):
        return 0
    conn.execute(
        "create temp table if not exists stage_refunds (order_id bigint, updated_at timestamptz) "
        "on commit drop"
    )
    copy_rows(conn, "stage_refunds", ("order_id", "updated_at"), [_integers(order_ids), _timestamps(at_ms)])
    conn.execute(
        "update shop.orders o set status = 'refunded', updated_at = r.updated_at "
        "from stage_refunds r where o.order_id = r.order_id"
    )
    conn.execute("truncate stage_refunds")
    return len(order_ids)
