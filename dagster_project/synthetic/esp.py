"""ESP engagement: campaigns sent at varied times, deliveries, bounces, opens, clicks, unsubscribes.

Opens carry the send-time signal honestly: a person who reads an email does so at their next reading
moment after delivery (mostly around their preferred local hour-of-week). Privacy-proxy users produce a
machine open 1-10 s after every delivery instead, which carries no signal.
"""

from __future__ import annotations

import numpy as np
import orjson

from dagster_project.synthetic import pieces, randomness, vocab
from dagster_project.synthetic.clock import DAY_MS, HOUR_MS, hour_of_week
from dagster_project.synthetic.context import Day, Population
from dagster_project.synthetic.files import DayEvents
from dagster_project.synthetic.state import (
    SUPPRESSED_BOUNCE,
    SUPPRESSED_COMPLAINT,
    SUPPRESSED_UNSUBSCRIBE,
    WorldState,
)
from dagster_project.synthetic.traits import PROXY_APPLE, PROXY_GOOGLE, PROXY_NONE, TEST, behaviour_array

SENT, DELIVERED, OPEN, CLICK, BOUNCE, UNSUBSCRIBE, COMPLAINT = range(7)
EVENT_TYPES = ("sent", "delivered", "open", "click", "bounce", "unsubscribe", "spam_complaint")
SOFT_BOUNCE_RATE = 0.01
DUPLICATE_RATE = 0.005
LATE_RATE = 0.005
SEND_SPREAD_MS = 15 * 60_000


def campaigns_for_day(seed: int, day: Day) -> list[tuple[str, int]]:
    """(campaign_id, send moment) of campaigns starting on `day`: 1-2 a week, at varied days and hours."""
    week = day.index // 7
    rng = randomness.rng(seed, randomness.CAMPAIGNS, week)
    count = 1 + int(rng.random() < 0.5)
    offsets = rng.choice(7, count, replace=False)
    if week == 0 and 0 not in offsets:
        offsets[0] = 0  # a new world starts with a campaign, so even a short one has ESP events
    minutes = rng.integers(0, 23 * 60, count)
    return [
        (f"cmp-{week * 2 + j:05d}", day.start_ms + int(minutes[j]) * 60_000)
        for j in range(count)
        if offsets[j] == day.index % 7
    ]


class _Events:
    """Columns of the day's ESP events before they become JSON lines."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("kind", "person", "campaign", "ms", "agent")
        }

    def add(
        self, kind: int, persons: np.ndarray, campaign: int, ms: np.ndarray, agent: np.ndarray | int = -1
    ) -> None:
        n = len(persons)
        self.parts["kind"].append(np.full(n, kind, np.int8))
        self.parts["person"].append(np.asarray(persons, np.int64))
        self.parts["campaign"].append(np.full(n, campaign, np.int32))
        self.parts["ms"].append(np.asarray(ms, np.int64))
        self.parts["agent"].append(np.broadcast_to(np.asarray(agent, np.int16), (n,)).copy())

    def columns(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in self.parts.items()}


def _reading_delay_hours(
    rng: np.random.Generator, population: Population, day: Day, persons: np.ndarray, delivered_ms: np.ndarray
) -> np.ndarray:
    """Hours from delivery to the person's next reading moment (mostly their preferred hour-of-week)."""
    people = population.people
    local_ms = delivered_ms + day.offsets_ms[people.timezone[persons]]
    local_how = hour_of_week(local_ms) + (local_ms % HOUR_MS) / HOUR_MS
    preferred = people.preferred_how[persons].astype(np.float64) + 0.5
    noise = rng.normal(0.0, 0.6, len(persons))
    weekly = np.mod(preferred + noise - local_how, 168.0)
    daily = np.mod(np.mod(preferred, 24.0) + noise - np.mod(local_how, 24.0), 24.0)
    anytime = rng.exponential(5.0, len(persons))
    mode = rng.random(len(persons))
    return np.where(mode < 0.55, weekly, np.where(mode < 0.8, daily, anytime)) + 0.02


def _campaign(
    rng, population: Population, state: WorldState, day: Day, events: _Events, campaign: int, send_ms: int
) -> int:
    people = population.people
    audience = np.flatnonzero(
        (people.subscribed_ms <= send_ms) & (state.suppressed_ms > send_ms) & (people.archetype != TEST)
    )
    n = len(audience)
    sent_ms = send_ms + rng.integers(0, SEND_SPREAD_MS, n)
    events.add(SENT, audience, campaign, sent_ms)
    state.esp_seen[audience] = True

    hard = people.mailbox_dead[audience]
    soft = ~hard & (rng.random(n) < SOFT_BOUNCE_RATE)
    bounce_ms = sent_ms + rng.integers(2_000, 60_000, n)
    events.add(BOUNCE, audience[hard], campaign, bounce_ms[hard], agent=1)  # agent slot = bounce kind
    events.add(BOUNCE, audience[soft], campaign, bounce_ms[soft], agent=0)
    state.suppress(audience[hard], bounce_ms[hard], SUPPRESSED_BOUNCE)

    ok = ~hard & ~soft
    persons = audience[ok]
    delivered_ms = sent_ms[ok] + rng.integers(1_000, 30_000, len(persons))
    events.add(DELIVERED, persons, campaign, delivered_ms)

    proxy = people.proxy[persons]
    machine = proxy != PROXY_NONE
    machine_ms = delivered_ms + rng.integers(1_000, 10_000, len(persons))
    events.add(OPEN, persons[machine], campaign, machine_ms[machine], agent=-1 - proxy[machine])

    archetype = people.archetype[persons]
    read_rate = np.clip(behaviour_array("open_rate")[archetype] * people.engagement[persons], 0, 0.95)
    reads = rng.random(len(persons)) < read_rate
    readers, read_from = persons[reads], delivered_ms[reads]
    read_ms = read_from + (_reading_delay_hours(rng, population, day, readers, read_from) * HOUR_MS).astype(
        np.int64
    )
    visible = people.proxy[readers] == PROXY_NONE
    events.add(OPEN, readers[visible], campaign, read_ms[visible], agent=people.mail_agent[readers[visible]])
    again = visible & (rng.random(len(readers)) < 0.2)
    reopen_ms = read_ms[again] + (rng.exponential(3.0, int(again.sum())) * HOUR_MS).astype(np.int64)
    events.add(OPEN, readers[again], campaign, reopen_ms, agent=people.mail_agent[readers[again]])

    reader_archetype = people.archetype[readers]
    clicks = rng.random(len(readers)) < behaviour_array("click_given_open")[reader_archetype]
    click_ms = read_ms[clicks] + 15_000 + rng.exponential(60_000, int(clicks.sum())).astype(np.int64)
    events.add(CLICK, readers[clicks], campaign, click_ms, agent=people.mail_agent[readers[clicks]])
    unsubscribes = rng.random(len(readers)) < behaviour_array("unsubscribe_given_open")[reader_archetype]
    unsubscribe_ms = read_ms[unsubscribes] + rng.integers(20_000, 300_000, int(unsubscribes.sum()))
    events.add(UNSUBSCRIBE, readers[unsubscribes], campaign, unsubscribe_ms)
    state.suppress(readers[unsubscribes], unsubscribe_ms, SUPPRESSED_UNSUBSCRIBE)

    complaints = rng.random(len(persons)) < behaviour_array("complaint_per_delivery")[archetype]
    complaint_ms = delivered_ms[complaints] + rng.integers(HOUR_MS, 72 * HOUR_MS, int(complaints.sum()))
    events.add(COMPLAINT, persons[complaints], campaign, complaint_ms)
    state.suppress(persons[complaints], complaint_ms, SUPPRESSED_COMPLAINT)
    return n


def esp_day(seed: int, population: Population, state: WorldState, day: Day) -> DayEvents:
    rng = day.rng(seed, randomness.ESP)
    campaigns = campaigns_for_day(seed, day)
    events = _Events()
    for number, (_, send_ms) in enumerate(campaigns):
        _campaign(rng, population, state, day, events, number, send_ms)
    cols = events.columns()
    out = DayEvents()
    n = len(cols["kind"])
    if n == 0:
        return out
    arrival = cols["ms"] + rng.integers(200, 5_000, n)
    late = (rng.random(n) < LATE_RATE) & (cols["kind"] != SENT)
    arrival[late] = (cols["ms"][late] // DAY_MS + 1) * DAY_MS + rng.integers(0, 6 * HOUR_MS, int(late.sum()))
    duplicate = rng.random(n) < DUPLICATE_RATE
    duplicate_arrival = arrival + rng.integers(1_000, 2 * HOUR_MS, n)
    link = rng.integers(0, len(vocab.EMAIL_LINKS), n)
    lines = _lines(population, day, cols, [campaign_id for campaign_id, _ in campaigns], link)
    # each line, then its duplicate if it has one (the order the events were drawn in)
    row = np.repeat(np.arange(n), 1 + duplicate)
    again = np.r_[False, row[1:] == row[:-1]]
    out.file_day = day.file_days(np.where(again, duplicate_arrival[row], arrival[row])).tolist()
    out.arrival_ms = np.where(again, duplicate_arrival[row], arrival[row]).tolist()
    out.lines = [lines[i] for i in row.tolist()]
    return out


def _lines(
    population: Population, day: Day, cols: dict[str, np.ndarray], campaign_ids: list[str], link: np.ndarray
) -> list[bytes]:
    """The events' JSON lines, keys in this order: event_id, event_type, profile_id, email, campaign_id,
    message_id, timestamp, then user_agent and ip (opens, clicks), url (clicks), bounce_type (bounces)."""
    kind, person, campaign, agent = cols["kind"], cols["person"], cols["campaign"], cols["agent"]
    n = len(kind)
    engaged = np.isin(kind, (OPEN, CLICK))
    agents = len(vocab.MAIL_USER_AGENTS)
    apple, google = agent == -1 - PROXY_APPLE, agent == -1 - PROXY_GOOGLE
    agent_slot = np.where(apple, agents, np.where(google, agents + 1, agent))
    agent_texts = (*vocab.MAIL_USER_AGENTS, vocab.APPLE_PROXY_USER_AGENT, vocab.GOOGLE_PROXY_USER_AGENT)
    user_agent = pieces.table(
        [b',"user_agent":' + orjson.dumps(text) + b',"ip":"' for text in agent_texts] + [b""]
    )[np.where(engaged, agent_slot, len(agent_texts))]
    ip = np.zeros(n, dtype="S15")
    rows = np.flatnonzero(engaged)
    host_ips = population.ips(person[rows])
    ip[rows] = [
        f"17.58.{p >> 8 & 255}.{p & 255}" if slot == agents
        else f"66.102.{p >> 8 & 255}.{p & 255}" if slot == agents + 1
        else host_ips[k]
        for k, (p, slot) in enumerate(zip(person[rows].tolist(), agent_slot[rows].tolist(), strict=True))
    ]  # fmt: skip
    urls = [
        b',"url":'
        + orjson.dumps(f"{vocab.SHOP_HOST}{path}?utm_source=esp&utm_medium=email&utm_campaign={campaign_id}")
        for campaign_id in campaign_ids
        for path in vocab.EMAIL_LINKS
    ]
    url = pieces.table([*urls, b""])[
        np.where(kind == CLICK, campaign * len(vocab.EMAIL_LINKS) + link, len(urls))
    ]
    bounce = pieces.table([b',"bounce_type":"soft"', b',"bounce_type":"hard"', b""])[
        np.where(kind == BOUNCE, agent == 1, 2)
    ]
    campaign_piece = pieces.table(
        [
            f',"campaign_id":"{campaign_id}","message_id":"msg-{int(campaign_id.split("-")[1]):05d}-'.encode()
            for campaign_id in campaign_ids
        ]
    )[campaign]
    event_type = pieces.table([f'","event_type":"{name}","profile_id":"'.encode() for name in EVENT_TYPES])[
        kind
    ]
    stamps = np.datetime_as_string(cols["ms"].astype("datetime64[ms]"), unit="ms").astype("S23")
    return pieces.join(
        [
            pieces.constant(f'{{"event_id":"evt-{day.index:05d}-'.encode(), n),
            pieces.digits(np.arange(n), 8),
            event_type,
            population.esp_id_bytes[person],
            pieces.constant(b'","email":', n),
            population.esp_email_json[person],
            campaign_piece,
            pieces.digits(person, 8),
            pieces.constant(b'","timestamp":"', n),
            stamps,
            pieces.constant(b'+00:00"', n),
            user_agent,
            ip,
            np.where(engaged, b'"', b""),
            url,
            bounce,
            pieces.constant(b"}", n),
        ]
    )
