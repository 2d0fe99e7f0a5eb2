"""Website events in the Segment spec shape: page, track and identify calls from browsing sessions.

Each person browses from a few devices (one anonymousId each); signing in (or registering) sends an
identify call that links the anonymousId to the userId (the shop customer_id). Bots browse anonymously.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import orjson

from dagster_project.synthetic import pieces, randomness, vocab
from dagster_project.synthetic.clock import DAY_MS, HOUR_MS
from dagster_project.synthetic.context import Day, Population
from dagster_project.synthetic.files import DayEvents, json_line
from dagster_project.synthetic.shop import OrderBatch, shop_email
from dagster_project.synthetic.state import WorldState
from dagster_project.synthetic.traits import (
    BROWSING_HOUR_WEIGHTS,
    EMAIL_ONLY,
    FIRST_CUSTOMER_ID,
    NEW_CUSTOMER,
    TIMEZONES,
    behaviour_array,
    last_name_text,
)

BROWSE, REGISTER, PURCHASE, BOT = range(4)
BOT_SESSIONS_PER_PERSON_DAY = 0.004
DUPLICATE_RATE = 0.004
LATE_RATE = 0.008
LAST_SESSION_START_MS = DAY_MS - 2 * HOUR_MS  # a session's first event always lands in its own day
_TYPES = {kind: b'{"type":"' + kind.encode() for kind in ("page", "track", "identify")}


@dataclass
class Sessions:
    kind: np.ndarray
    person: np.ndarray  # -1 for bots
    device: np.ndarray
    start_ms: np.ndarray
    pages: np.ndarray
    signed_in: np.ndarray
    order: np.ndarray  # index into the day's orders (purchase sessions), else -1


def _local_start(rng: np.random.Generator, day: Day, timezones: np.ndarray) -> np.ndarray:
    """Session starts drawn from the local browsing-hour curve, kept inside the UTC day."""
    weights = BROWSING_HOUR_WEIGHTS / BROWSING_HOUR_WEIGHTS.sum()
    local = rng.choice(24, len(timezones), p=weights) * HOUR_MS + rng.integers(0, HOUR_MS, len(timezones))
    utc = np.mod(local - day.offsets_ms[timezones], DAY_MS)
    return day.start_ms + np.minimum(utc, LAST_SESSION_START_MS)


def plan_sessions(
    rng: np.random.Generator, population: Population, state: WorldState, day: Day, orders: OrderBatch
) -> Sessions:
    people = population.people
    arche = people.archetype
    registered = people.registered_ms < day.start_ms
    rate = behaviour_array("sessions_per_day")[arche] * np.sqrt(people.engagement)
    # future customers browse anonymously in the weeks before they register
    soon = (people.registered_ms >= day.start_ms) & (people.registered_ms < day.start_ms + 30 * DAY_MS)
    rate = np.where(registered, rate, np.where(soon, 0.5 * rate, 0.0))
    rate = np.where(arche == EMAIL_ONLY, 0.0, rate)
    browse_counts = rng.poisson(rate)
    browsers = np.repeat(np.arange(people.size), browse_counts)
    browse_device = (rng.random(len(browsers)) * people.devices[browsers]).astype(np.int8)
    browse_device[people.registered_ms[browsers] >= day.start_ms] = 0
    signed_in = (people.registered_ms[browsers] < day.start_ms) & (
        rng.random(len(browsers)) < behaviour_array("sign_in_rate")[arche[browsers]]
    )

    joined = np.flatnonzero((people.registered_ms >= day.start_ms) & (people.registered_ms < day.end_ms))
    join_start = np.minimum(people.registered_ms[joined], day.start_ms + LAST_SESSION_START_MS)

    buyers = orders.persons
    buy_device = (rng.random(len(buyers)) * people.devices[buyers]).astype(np.int8)
    buy_device[arche[buyers] == NEW_CUSTOMER] = 0

    bots = rng.poisson(BOT_SESSIONS_PER_PERSON_DAY * people.customers)
    n_browse, n_join, n_buy = len(browsers), len(joined), len(buyers)
    pages_mean = behaviour_array("pages_per_session")
    return Sessions(
        kind=np.concatenate(
            [
                np.full(n_browse, BROWSE),
                np.full(n_join, REGISTER),
                np.full(n_buy, PURCHASE),
                np.full(bots, BOT),
            ]
        ).astype(np.int8),
        person=np.concatenate([browsers, joined, buyers, np.full(bots, -1)]).astype(np.int64),
        device=np.concatenate(
            [browse_device, np.zeros(n_join, np.int8), buy_device, np.zeros(bots, np.int8)]
        ),
        start_ms=np.concatenate(
            [
                _local_start(rng, day, people.timezone[browsers]),
                join_start,
                orders.ordered_ms,  # purchase sessions end at the order; shifted back when built
                day.start_ms + rng.integers(0, LAST_SESSION_START_MS, bots),
            ]
        ),
        pages=np.concatenate(
            [
                1 + rng.poisson(np.maximum(pages_mean[arche[browsers]] - 1, 0)),
                1 + rng.poisson(2, n_join),
                np.zeros(n_buy, np.int64),
                5 + rng.poisson(20, bots),
            ]
        ),
        signed_in=np.concatenate([signed_in, np.ones(n_join + n_buy, bool), np.zeros(bots, bool)]),
        order=np.concatenate([np.full(n_browse + n_join, -1), np.arange(n_buy), np.full(bots, -1)]),
    )


class _Writer:
    """Turns session steps into Segment JSON lines, with lags, late arrivals and duplicates.

    A record arrives as JSON pieces without its last three fields (messageId, timestamp, receivedAt);
    those are built by numpy a batch at a time, and each line is joined once, at its exact size.
    """

    BATCH = 8_192

    def __init__(self, rng: np.random.Generator, day: Day, out: DayEvents) -> None:
        self.rng, self.day, self.out, self.seq = rng, day, out, 0
        self.uniforms: list[float] = []
        self.pending: list[tuple[tuple[bytes, ...], int, int, int]] = []  # body, ms, arrival, duplicate's

    def uniform(self) -> float:
        """One U(0,1) draw, taken from a pre-drawn batch (per-call numpy draws dominate otherwise)."""
        if not self.uniforms:
            self.uniforms = self.rng.random(65_536).tolist()
        return self.uniforms.pop()

    def emit(self, body: tuple[bytes, ...], ms: int, first_of_session: bool) -> None:
        # the draws of `uniform`, inlined: a refill happens only when the batch is used up
        u, uniform = self.uniforms, self.uniform
        arrival = ms + 50 + int((u.pop() if u else uniform()) * 1_950)
        if not first_of_session and (u.pop() if u else uniform()) < LATE_RATE:
            arrival = (ms // DAY_MS + 1) * DAY_MS + int(uniform() * 6 * HOUR_MS)
        duplicate = (u.pop() if u else uniform()) < DUPLICATE_RATE
        again = arrival + 1_000 + int(uniform() * 3 * HOUR_MS) if duplicate else -1
        self.pending.append((body, ms, arrival, again))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        n = len(self.pending)
        if not n:
            return
        bodies, ms, arrivals, agains = zip(*self.pending, strict=True)
        tails = pieces.join(
            [
                pieces.constant(b',"messageId":"ajs-%05d-' % self.day.index, n),
                pieces.digits(np.arange(self.seq + 1, self.seq + n + 1), 8),
                pieces.constant(b'","timestamp":"', n),
                _iso_bytes(ms),
                pieces.constant(b'+00:00","receivedAt":"', n),
                _iso_bytes(arrivals),
                pieces.constant(b'+00:00"}', n),
            ]
        )
        self.seq += n
        world_start, out = self.day.world_start_ms, self.out
        file_days, arrival_ms, lines = out.file_day, out.arrival_ms, out.lines
        for body, tail, arrival, again in zip(bodies, tails, arrivals, agains, strict=True):
            line = b"".join((*body, tail))
            file_days.append((arrival - world_start) // DAY_MS)
            arrival_ms.append(arrival)
            lines.append(line)
            if again >= 0:
                out.add((again - world_start) // DAY_MS, again, line)
        self.pending = []


def _iso_bytes(ms: tuple[int, ...]) -> np.ndarray:
    """clock.iso's text (without the offset) as bytes."""
    return np.datetime_as_string(np.array(ms, dtype="datetime64[ms]"), unit="ms").astype("S23")


@functools.lru_cache(maxsize=4_096)
def _json(text: str | None) -> bytes:
    """A recurring text (agent, time zone, event name) as JSON."""
    return json_line(text)


@functools.lru_cache(maxsize=1 << 16)
def _page(path: str, title: str, referrer: str) -> tuple[bytes, bytes, str]:
    """A page call's properties and context.page as JSON, and its URL."""
    url = vocab.SHOP_HOST + path
    return (
        json_line({"path": path, "url": url, "title": title, "referrer": referrer}),
        json_line({"path": path, "url": url, "referrer": referrer}),
        url,
    )


def web_day(seed: int, population: Population, state: WorldState, day: Day, orders: OrderBatch) -> DayEvents:
    rng = day.rng(seed, randomness.WEB)
    people = population.people
    sessions = plan_sessions(rng, population, state, day, orders)
    out = DayEvents()
    writer = _Writer(rng, day, out)
    n = len(sessions.kind)
    real = sessions.person >= 0
    anonymous_ids = np.empty(n, dtype=object)
    anonymous_ids[real] = people.anonymous_ids(sessions.person[real], sessions.device[real])
    bot_keys = randomness.hash64(np.arange(n, dtype=np.uint64) + np.uint64(day.index << 32), seed * 131 + 7)
    anonymous_ids[~real] = [f"bot-{k:016x}" for k in bot_keys[~real].tolist()]
    ips = np.empty(n, dtype=object)
    ips[real] = population.ips(sessions.person[real], salt=1)
    ips[~real] = [f"66.249.{(k >> 8) % 256}.{k % 256}" for k in bot_keys[~real].tolist()]
    gaps = (rng.exponential(40_000, (n, 4)).astype(np.int64) + 2_000).tolist()
    # plain Python values for the loop below (numpy scalar access costs more than the work itself)
    kinds, persons, devices = sessions.kind.tolist(), sessions.person.tolist(), sessions.device.tolist()
    signed_in, starts = sessions.signed_in.tolist(), sessions.start_ms.tolist()
    agents = np.where(
        real, (people.web_agent[sessions.person] + sessions.device) % len(vocab.WEB_USER_AGENTS), 0
    ).tolist()
    zones = people.timezone[sessions.person].tolist()
    devices_seen = bytearray(state.devices_seen.tobytes())
    prices = state.product_price_cents.tolist()
    user_seen = bytearray(state.web_user_seen.astype(np.uint8).tobytes())

    for s in range(n):
        kind, person, device = kinds[s], persons[s], devices[s]
        if kind == BOT:
            agent = vocab.BOT_USER_AGENTS[s % len(vocab.BOT_USER_AGENTS)]
            timezone = None
        else:
            agent = vocab.WEB_USER_AGENTS[agents[s]]
            timezone = TIMEZONES[zones[s]]
        user_id = str(person + FIRST_CUSTOMER_ID) if signed_in[s] else None
        anonymous_id = anonymous_ids[s]
        steps = _session_steps(rng, population, sessions, s, orders, kind, prices)
        identify = signed_in[s] and (
            kind == REGISTER
            or not user_seen[person]
            or not (devices_seen[person] >> device) & 1
            or writer.uniform() < 0.15
        )
        if kind != BOT:
            devices_seen[person] |= 1 << device
        if identify:
            if kind == REGISTER:
                steps.insert(0, ("page", "/account/register", "Create account"))
            steps.insert(1 if kind == REGISTER else 0, ("identify",))
            steps.insert(2 if kind == REGISTER else 1, ("track", "Signed In", {}))
            user_seen[person] = 1
        session_gaps = gaps[s]
        step_gaps = [session_gaps[k % 4] if kind != BOT else 500 + int(writer.uniform() * 2_500)
                     for k in range(len(steps))]  # fmt: skip
        ms = starts[s]
        if kind == PURCHASE:  # the session ends with "Order Completed" at the order's moment
            ms = max(ms - sum(step_gaps[:-1]), day.start_ms)
        referrer = vocab.REFERRERS[s % len(vocab.REFERRERS)] if kind != BOT else ""
        page_context = _page("/", "Home", referrer)[1]
        head = b'","anonymousId":' + orjson.dumps(anonymous_id) + b',"userId":' + orjson.dumps(user_id)
        context_head = (
            b',"context":{"userAgent":' + _json(agent) + b',"ip":' + orjson.dumps(ips[s]) + b',"page":'
        )
        context_tail = b',"timezone":' + _json(timezone) + b"}"
        first = True
        for k, step in enumerate(steps):
            if step[0] == "page":
                properties, page_context, referrer = _page(step[1], step[2], referrer)
                middle = b',"properties":' + properties
            elif step[0] == "track":
                middle = b',"event":' + _json(step[1]) + b',"properties":' + orjson.dumps(step[2])
            else:
                traits = {
                    "email": shop_email(people, person, population.emails[person]),
                    "first_name": "Test"
                    if person >= people.customers
                    else vocab.FIRST_NAMES[people.first_name[person]],
                    "last_name": last_name_text(people, person, int(state.customer_name_version[person])),
                }
                middle = b',"traits":' + orjson.dumps(traits)
            body = (_TYPES[step[0]], head, middle, context_head, page_context, context_tail)
            writer.emit(body, ms, first)
            first = False
            ms += step_gaps[k]
    writer.flush()
    state.devices_seen[:] = np.frombuffer(devices_seen, dtype=np.uint8)
    state.web_user_seen[:] = np.frombuffer(user_seen, dtype=np.uint8).astype(bool)
    return out


def _session_steps(
    rng: np.random.Generator,
    population: Population,
    sessions: Sessions,
    s: int,
    orders: OrderBatch,
    kind: int,
    prices: list[int],
) -> list[tuple]:
    catalogue = population.catalogue
    steps: list[tuple] = []
    if kind == PURCHASE:
        order = int(sessions.order[s])
        steps.append(("page", "/", "Home"))
        for item in range(int(orders.item_start[order]), int(orders.item_start[order + 1])):
            product = int(orders.item_product[item])
            props = _product_properties(population, product, orders.item_unit_cents[item])
            steps.append(("page", catalogue.paths[product], catalogue.names[product]))
            steps.append(("track", "Product Viewed", props))
            steps.append(("track", "Product Added", {**props, "quantity": int(orders.item_quantity[item])}))
        total = round(int(orders.total_cents[order]) / 100, 2)
        steps.append(("page", "/cart", "Cart"))
        steps.append(("track", "Checkout Started", {"value": total, "currency": "USD"}))
        steps.append(("page", "/checkout", "Checkout"))
        steps.append(
            (
                "track",
                "Order Completed",
                {"order_id": str(int(orders.order_ids[order])), "revenue": total, "currency": "USD"},
            )
        )
        return steps
    for _ in range(int(sessions.pages[s])):
        if rng.random() < 0.6:
            product = int(rng.integers(0, len(catalogue.product_ids)))
            steps.append(("page", catalogue.paths[product], catalogue.names[product]))
            if kind != BOT and rng.random() < 0.8:
                price = prices[product]
                steps.append(("track", "Product Viewed", _product_properties(population, product, price)))
                if rng.random() < 0.08:
                    steps.append(("track", "Product Added", _product_properties(population, product, price)))
        else:
            path, title = vocab.STATIC_PAGES[int(rng.integers(0, len(vocab.STATIC_PAGES)))]
            steps.append(("page", path, title))
    return steps


def _product_properties(population: Population, product: int, cents) -> dict:
    product_id, sku, category = population.catalogue.texts[product]
    return {
        "product_id": product_id,
        "sku": sku,
        "category": category,
        "price": None if cents is None else round(int(cents) / 100, 2),
    }
