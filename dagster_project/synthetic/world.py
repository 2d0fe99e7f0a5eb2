"""Generating (or extending) the whole synthetic world, day by day, with bounded memory.

A fresh world writes the shop's history (customers and orders before the start) and then each day:
shop changes, web events, ESP events, the CRM export. Extending a world (`start` = the day after its
last day) loads the generator state and continues; every day draws from its own random stream, so a
world generated in one go equals the same world generated in two runs.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg

from dagster_project.synthetic import crm, esp, groundtruth, ownership, randomness, shop, web
from dagster_project.synthetic.clock import DAY_MS, HOUR_MS, epoch_ms
from dagster_project.synthetic.context import Day, Population
from dagster_project.synthetic.files import write_day_file
from dagster_project.synthetic.state import WorldState
from dagster_project.synthetic.traits import ARCHETYPES, TEST_ACCOUNT, TIMEZONES, build_people

GENERATOR_VERSION = 1
CUSTOMER_CHANGE_RATE = 0.002
PRICE_CHANGE_CHANCE = 0.3
LAYOUT = {
    "shop": "schema shop (customers, products, orders, order_items) in the shop database (SHOP_URL)",
    "crm": "crm/contacts/<export date>/page-NNNNN.json (first export full, then daily deltas)",
    "web": "web/events/<file date>.jsonl (Segment page/track/identify)",
    "esp": "esp/events/<file date>.jsonl",
    "ground_truth": "ground_truth/people.csv, ground_truth/world.json (never read by the pipeline)",
}
SOURCE_FOLDERS = ("web/events", "esp/events", "crm/contacts", "ground_truth", ".generator")


class WorldMismatchError(ValueError):
    """The requested days do not fit the world already in the output folder."""


@dataclass(frozen=True)
class WorldConfig:
    out: Path
    shop_url: str
    customers: int = 10_000
    days: int = 120
    start: dt.date | None = None  # default: the world ends yesterday (fresh) / the day after its end (extend)
    seed: int = 42
    malformed_rate: float = 0.0
    overwrite: bool = False
    shop_is_embedded: bool = False
    """The shop database is Sendwise's embedded `sendwise_shop` (its own even without the marker)."""


@dataclass
class Paths:
    out: Path

    @property
    def ground_truth(self) -> Path:
        return self.out / "ground_truth"

    @property
    def generator(self) -> Path:
        return self.out / ".generator"

    @property
    def web(self) -> Path:
        return self.out / "web" / "events"

    @property
    def esp(self) -> Path:
        return self.out / "esp" / "events"

    @property
    def crm(self) -> Path:
        return self.out / "crm" / "contacts"

    def pending(self, stream: str) -> Path:
        return self.generator / "pending" / stream


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress:
        progress(message)


def generate(config: WorldConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Generate or extend the world in `config.out` and the shop database; returns world.json's content."""
    paths = Paths(config.out)
    meta = None if config.overwrite else groundtruth.read_world(paths.ground_truth)
    today = dt.datetime.now(dt.UTC).date()
    if meta is None:
        start = config.start or today - dt.timedelta(days=config.days)
        return _fresh(config, paths, start, progress)
    world_start, world_end = dt.date.fromisoformat(meta["start"]), dt.date.fromisoformat(meta["end"])
    same = meta["seed"] == config.seed and meta["customers"] == config.customers
    requested = config.start
    if (
        same
        and requested in (None, world_start)
        and meta["days"] == config.days
        and meta["version"] == GENERATOR_VERSION
    ):
        _check_shop(config.shop_url, meta)
        _say(progress, f"world in {config.out} is up to date ({world_start} .. {world_end}); nothing to do")
        return meta
    if same and requested == world_end + dt.timedelta(days=1):
        if not ownership.folder_is_ours(config.out):
            raise ownership.NotOursError(f"{config.out} is not a world Sendwise wrote: refusing to extend it")
        _check_shop(config.shop_url, meta)
        return _extend(config, paths, meta, progress)
    raise WorldMismatchError(
        f"{config.out} already holds a world (seed {meta['seed']}, {meta['customers']} customers, "
        f"{world_start} .. {world_end}); to add days pass --start {world_end + dt.timedelta(days=1)} "
        f"with the same --seed and --customers, or pass --overwrite to replace it"
    )


def _check_shop(shop_url: str, meta: dict) -> None:
    try:
        with psycopg.connect(shop_url) as conn:
            row = conn.execute("select count(*), coalesce(max(order_id), 0) from shop.orders").fetchone()
    except psycopg.Error as error:
        raise WorldMismatchError(
            f"the shop database does not hold this world ({error}); use --overwrite"
        ) from error
    expected = (meta["rows"]["shop_orders"], meta["rows"]["shop_orders"])
    if tuple(row) != expected:
        raise WorldMismatchError(
            f"the shop database holds {row[0]} orders (max id {row[1]}), the world expects {expected[0]}; "
            "it belongs to another world: use --overwrite or point SHOP_URL at this world's shop"
        )


def _population(config: WorldConfig, start: dt.date) -> tuple[Population, WorldState]:
    people = build_people(config.seed, config.customers, epoch_ms(start))
    catalogue, prices = shop.build_catalogue(
        randomness.rng(config.seed, randomness.PRODUCTS), epoch_ms(start)
    )
    state = WorldState.empty(people, len(prices))
    state.product_price_cents = prices
    state.product_updated_ms = catalogue.created_ms.copy()
    return Population.of(people, catalogue), state


def _fresh(config: WorldConfig, paths: Paths, start: dt.date, progress) -> dict:
    began = time.perf_counter()
    ownership.check_folder(paths.out)  # refuse before anything is written
    with psycopg.connect(config.shop_url) as conn:
        if not config.shop_is_embedded:
            ownership.check_shop(conn, config.shop_url)
    ownership.claim_folder(paths.out)
    for folder in SOURCE_FOLDERS:
        shutil.rmtree(paths.out / folder, ignore_errors=True)
    population, state = _population(config, start)
    people = population.people
    rows = {
        key: 0
        for key in (
            "shop_customers",
            "shop_products",
            "shop_orders",
            "shop_order_items",
            "shop_updates",
            "crm_contact_records",
            "crm_exports",
            "web_events",
            "esp_events",
        )
    }
    _say(
        progress,
        f"building a world of {people.customers} customers (+{people.size - people.customers} test "
        f"accounts) from {start} for {config.days} days, seed {config.seed}",
    )
    with psycopg.connect(config.shop_url) as conn:
        shop.reset_schema(conn)
        ownership.mark_shop(conn)
        rng = randomness.rng(config.seed, randomness.HISTORY)
        rows["shop_products"] += shop.copy_rows(
            conn,
            "shop.products",
            shop.PRODUCT_COLUMNS,
            shop.product_rows(population.catalogue, state, np.arange(len(state.product_price_cents))),
        )
        before = np.flatnonzero(people.registered_ms < people.start_ms)
        state.customer_written[before] = True
        edited = rng.random(len(before)) < 0.3
        state.customer_updated_ms[before] = np.where(
            edited,
            people.registered_ms[before]
            + (rng.random(len(before)) * (people.start_ms - people.registered_ms[before])).astype(np.int64),
            people.registered_ms[before],
        )
        rows["shop_customers"] += shop.copy_rows(
            conn,
            "shop.customers",
            shop.CUSTOMER_COLUMNS,
            shop.customer_rows(people, state, before, [population.emails[p] for p in before.tolist()]),
        )
        for history in shop.history_orders(rng, people, state):
            shop.copy_orders(conn, history, population.catalogue, people)
            rows["shop_orders"] += len(history)
            rows["shop_order_items"] += len(history.item_ids)
            if people.size > shop.HISTORY_CHUNK:
                _say(progress, f"shop history: {rows['shop_orders']} orders so far "
                               f"({time.perf_counter() - began:.1f}s)")  # fmt: skip
        shop.add_keys(conn)
        conn.commit()
        _say(
            progress,
            f"shop history: {rows['shop_customers']} customers, {rows['shop_orders']} orders "
            f"({time.perf_counter() - began:.1f}s)",
        )
        meta = {
            "version": GENERATOR_VERSION,
            "seed": config.seed,
            "customers": config.customers,
            "people": people.size,
            "test_accounts": people.size - people.customers,
            "start": start.isoformat(),
            "days": 0,
            "end": (start - dt.timedelta(days=1)).isoformat(),
            "rows": rows,
            "malformed_rate": config.malformed_rate,
        }
        _run_days(conn, config, paths, population, state, meta, start, 0, config.days, progress, began)
    return meta


def _extend(config: WorldConfig, paths: Paths, meta: dict, progress) -> dict:
    began = time.perf_counter()
    start = dt.date.fromisoformat(meta["start"])
    population, _ = _population(config, start)
    state = WorldState.load(paths.generator)
    first = meta["days"]
    _say(progress, f"extending the world in {config.out} by {config.days} day(s) from {config.start}")
    # a failed extension must leave the world as it was: the shop transaction rolls back, and the
    # generator state, pending events and the day files written so far are put back
    backup = paths.out / ".generator.backup"
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(paths.generator, backup)
    try:
        with psycopg.connect(config.shop_url) as conn:
            _run_days(conn, config, paths, population, state, meta, start, first, config.days, progress,
                      began)  # fmt: skip
    except BaseException:
        shutil.rmtree(paths.generator, ignore_errors=True)
        backup.rename(paths.generator)
        for index in range(first, first + config.days):
            date = (start + dt.timedelta(days=index)).isoformat()
            (paths.web / f"{date}.jsonl").unlink(missing_ok=True)
            (paths.esp / f"{date}.jsonl").unlink(missing_ok=True)
            shutil.rmtree(paths.crm / date, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return meta


def _run_days(
    conn,
    config: WorldConfig,
    paths: Paths,
    population: Population,
    state: WorldState,
    meta: dict,
    start: dt.date,
    first: int,
    count: int,
    progress,
    began: float,
) -> None:
    rows = meta["rows"]
    start_ms = epoch_ms(start)
    for index in range(first, first + count):
        day = Day.of(start, start_ms, index)
        counts = generate_day(conn, config, paths, population, state, day)
        for key, value in counts.items():
            if key in rows:
                rows[key] += value
        _say(
            progress,
            f"day {index - first + 1}/{count} {day.date}: {counts['shop_orders']} orders, "
            f"{counts['web_events']} web events, {counts['esp_events']} ESP events, "
            f"{counts['crm_contact_records']} CRM records ({time.perf_counter() - began:.1f}s)",
        )
    meta["days"] = first + count
    meta["end"] = (start + dt.timedelta(days=first + count - 1)).isoformat()
    rows["shop_customers"] = int(state.customer_written.sum())
    rows["shop_orders"] = int(state.next_order_id) - 1
    rows["shop_order_items"] = int(state.next_order_item_id) - 1
    state.save(paths.generator)
    groundtruth.write_people(population, state, paths.ground_truth)
    meta["archetypes"] = _archetype_counts(population)
    meta["timezones"] = _timezone_counts(population)
    meta["layout"] = LAYOUT
    conn.commit()  # the shop's days become visible together with the world that describes them
    groundtruth.write_world(meta, paths.ground_truth)
    _say(progress, f"world written to {config.out}: {rows} ({time.perf_counter() - began:.1f}s)")


def _timezone_counts(population: Population) -> dict[str, int]:
    counts = np.bincount(population.people.timezone, minlength=len(TIMEZONES))
    return {zone: int(count) for zone, count in zip(TIMEZONES, counts, strict=True)}


def _archetype_counts(population: Population) -> dict[str, int]:
    names = (*ARCHETYPES, TEST_ACCOUNT)
    counts = np.bincount(population.people.archetype, minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts, strict=True)}


def generate_day(
    conn: psycopg.Connection,
    config: WorldConfig,
    paths: Paths,
    population: Population,
    state: WorldState,
    day: Day,
) -> dict[str, int]:
    counts = {"shop_updates": 0, "shop_orders": 0}
    orders = _shop_day(conn, config.seed, population, state, day, counts)
    web_events = web.web_day(config.seed, population, state, day, orders)
    counts["web_events"] = write_day_file(
        web_events,
        day.index,
        day.date,
        paths.web,
        paths.pending("web"),
        config.malformed_rate,
        day.rng(config.seed, randomness.MALFORMED),
    )
    esp_events = esp.esp_day(config.seed, population, state, day)
    counts["esp_events"] = write_day_file(
        esp_events,
        day.index,
        day.date,
        paths.esp,
        paths.pending("esp"),
        config.malformed_rate,
        day.rng(config.seed, randomness.MALFORMED + 1),
    )
    counts["crm_contact_records"] = crm.crm_day(config.seed, population, state, day, paths.crm)
    counts["crm_exports"] = 1
    return counts


def _shop_day(
    conn: psycopg.Connection,
    seed: int,
    population: Population,
    state: WorldState,
    day: Day,
    counts: dict[str, int],
) -> shop.OrderBatch:
    """Today's shop changes: a price change, new and edited customers, orders, refunds."""
    rng = day.rng(seed, randomness.SHOP)
    people = population.people
    if rng.random() < PRICE_CHANGE_CHANCE:
        product = np.array([rng.integers(0, len(state.product_price_cents))])
        state.product_price_cents[product] = np.maximum(
            199,
            (state.product_price_cents[product] * rng.uniform(0.85, 1.15)).astype(np.int64) // 100 * 100 - 1,
        )
        state.product_updated_ms[product] = day.start_ms + rng.integers(0, DAY_MS - HOUR_MS)
        counts["shop_updates"] += shop.upsert_rows(
            conn,
            "shop.products",
            "product_id",
            shop.PRODUCT_COLUMNS,
            shop.product_rows(population.catalogue, state, product),
        )

    joined = np.flatnonzero(~state.customer_written & (people.registered_ms < day.end_ms))
    state.customer_written[joined] = True
    state.customer_updated_ms[joined] = people.registered_ms[joined]
    existing = state.customer_written & (people.registered_ms < day.start_ms)
    edits = existing & (rng.random(people.size) < CUSTOMER_CHANGE_RATE)
    phone_edit = edits & (rng.random(people.size) < 0.6)
    state.customer_phone_version[phone_edit] += 1
    state.customer_name_version[edits & ~phone_edit] += 1
    # the nightly ESP -> shop sync turns accepts_marketing off after an unsubscribe, bounce or complaint
    opted_out = existing & state.accepts_marketing & (state.suppressed_ms < day.start_ms)
    state.accepts_marketing[opted_out] = False
    changed = np.flatnonzero(edits | opted_out)
    state.customer_updated_ms[changed] = day.start_ms + rng.integers(0, DAY_MS - HOUR_MS, len(changed))
    touched = np.union1d(joined, changed)
    if len(touched):
        shop.upsert_rows(
            conn,
            "shop.customers",
            "customer_id",
            shop.CUSTOMER_COLUMNS,
            shop.customer_rows(people, state, touched, [population.emails[p] for p in touched.tolist()]),
        )
    counts["shop_customers_new"] = len(joined)
    counts["shop_updates"] += len(changed)

    orders = shop.day_orders(rng, people, state, day.start_ms)
    shop.copy_orders(conn, orders, population.catalogue, people)
    counts["shop_orders"] = len(orders)
    refund_ids, refund_ms = shop.due_refunds(state, day.start_ms)
    counts["shop_updates"] += shop.apply_refunds(conn, refund_ids, refund_ms)
    return orders
