"""Latent traits of every person in the world: archetype, time zone, preferred reading hour, identities.

Traits depend only on (seed, customers, start), never on how many days are generated, so a world can
be extended day by day and stays the same world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagster_project.synthetic import randomness, vocab
from dagster_project.synthetic.clock import DAY_MS, NEVER


@dataclass(frozen=True)
class Behaviour:
    """How an archetype behaves; rates are per person."""

    share: float
    history_orders_per_30d: float
    window_orders_per_30d: float
    price_quantile: float  # where in the price-sorted catalogue they shop
    extra_items: float  # mean number of items beyond the first
    discount: float  # typical discount they buy at
    cancel_rate: float
    refund_rate: float
    sessions_per_day: float
    pages_per_session: float
    sign_in_rate: float
    subscribe_rate: float
    open_rate: float
    click_given_open: float
    unsubscribe_given_open: float
    complaint_per_delivery: float
    first_seen_days: tuple[float, float]  # registration/sign-up, in days relative to start


ARCHETYPES = (
    "loyal_high_spender",
    "bargain_hunter",
    "new_customer",
    "lapsing",
    "window_shopper",
    "email_only",
)
TEST_ACCOUNT = "test_account"
BEHAVIOURS = (
    Behaviour(  # loyal_high_spender: frequent, pricey baskets, reads most emails
        share=0.12,
        history_orders_per_30d=1.5,
        window_orders_per_30d=1.5,
        price_quantile=0.78,
        extra_items=1.6,
        discount=0.0,
        cancel_rate=0.03,
        refund_rate=0.03,
        sessions_per_day=0.10,
        pages_per_session=5.0,
        sign_in_rate=0.8,
        subscribe_rate=0.9,
        open_rate=0.50,
        click_given_open=0.30,
        unsubscribe_given_open=0.003,
        complaint_per_delivery=0.0002,
        first_seen_days=(-900, -200),
    ),
    Behaviour(  # bargain_hunter: cheap, discounted, returns things
        share=0.20,
        history_orders_per_30d=0.7,
        window_orders_per_30d=0.8,
        price_quantile=0.18,
        extra_items=0.6,
        discount=0.30,
        cancel_rate=0.08,
        refund_rate=0.09,
        sessions_per_day=0.07,
        pages_per_session=4.0,
        sign_in_rate=0.6,
        subscribe_rate=0.85,
        open_rate=0.30,
        click_given_open=0.22,
        unsubscribe_given_open=0.010,
        complaint_per_delivery=0.0005,
        first_seen_days=(-700, -60),
    ),
    Behaviour(  # new_customer: registers during the window, usually orders right away
        share=0.15,
        history_orders_per_30d=0.0,
        window_orders_per_30d=0.8,
        price_quantile=0.50,
        extra_items=0.8,
        discount=0.05,
        cancel_rate=0.04,
        refund_rate=0.05,
        sessions_per_day=0.09,
        pages_per_session=4.0,
        sign_in_rate=0.7,
        subscribe_rate=0.65,
        open_rate=0.35,
        click_given_open=0.20,
        unsubscribe_given_open=0.008,
        complaint_per_delivery=0.0005,
        first_seen_days=(-10, 100),
    ),
    Behaviour(  # lapsing: ordered a lot in the past, hardly anything now, rarely opens
        share=0.18,
        history_orders_per_30d=0.9,
        window_orders_per_30d=0.10,
        price_quantile=0.50,
        extra_items=0.8,
        discount=0.10,
        cancel_rate=0.05,
        refund_rate=0.05,
        sessions_per_day=0.015,
        pages_per_session=3.0,
        sign_in_rate=0.5,
        subscribe_rate=0.75,
        open_rate=0.07,
        click_given_open=0.10,
        unsubscribe_given_open=0.020,
        complaint_per_delivery=0.0010,
        first_seen_days=(-900, -200),
    ),
    Behaviour(  # window_shopper: browses a lot, hardly buys
        share=0.20,
        history_orders_per_30d=0.06,
        window_orders_per_30d=0.06,
        price_quantile=0.40,
        extra_items=0.3,
        discount=0.05,
        cancel_rate=0.05,
        refund_rate=0.05,
        sessions_per_day=0.17,
        pages_per_session=5.0,
        sign_in_rate=0.4,
        subscribe_rate=0.50,
        open_rate=0.15,
        click_given_open=0.12,
        unsubscribe_given_open=0.010,
        complaint_per_delivery=0.0005,
        first_seen_days=(-700, 60),
    ),
    Behaviour(  # email_only: newsletter subscriber without a shop account
        share=0.15,
        history_orders_per_30d=0.0,
        window_orders_per_30d=0.0,
        price_quantile=0.50,
        extra_items=0.0,
        discount=0.0,
        cancel_rate=0.0,
        refund_rate=0.0,
        sessions_per_day=0.0,
        pages_per_session=0.0,
        sign_in_rate=0.0,
        subscribe_rate=1.0,
        open_rate=0.40,
        click_given_open=0.15,
        unsubscribe_given_open=0.005,
        complaint_per_delivery=0.0003,
        first_seen_days=(-700, 100),
    ),
    Behaviour(  # test accounts (not drawn by share): staff placing test orders now and then
        share=0.0,
        history_orders_per_30d=0.3,
        window_orders_per_30d=0.3,
        price_quantile=0.50,
        extra_items=0.5,
        discount=0.0,
        cancel_rate=0.5,
        refund_rate=0.1,
        sessions_per_day=0.05,
        pages_per_session=3.0,
        sign_in_rate=1.0,
        subscribe_rate=0.0,
        open_rate=0.0,
        click_given_open=0.0,
        unsubscribe_given_open=0.0,
        complaint_per_delivery=0.0,
        first_seen_days=(-400, -100),
    ),
)
EMAIL_ONLY = ARCHETYPES.index("email_only")
NEW_CUSTOMER = ARCHETYPES.index("new_customer")
LAPSING = ARCHETYPES.index("lapsing")
TEST = len(ARCHETYPES)


def behaviour_array(field: str) -> np.ndarray:
    return np.array([getattr(b, field) for b in BEHAVIOURS], dtype=np.float64)


TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Asia/Tokyo",
    "Australia/Sydney",
)
TIMEZONE_SHARES = (0.26, 0.15, 0.05, 0.15, 0.04, 0.12, 0.09, 0.05, 0.03, 0.06)
COUNTRY_CODES = (1, 1, 1, 1, 55, 44, 49, 33, 81, 61)

# When people like to read email (local time): weekday and hour-of-day weights.
READING_WEEKDAY_WEIGHTS = np.array([0.16, 0.16, 0.16, 0.16, 0.14, 0.11, 0.11])
READING_HOUR_WEIGHTS = np.array(
    [
        0.2,
        0.1,
        0.05,
        0.05,
        0.05,
        0.2,
        1.0,
        3.5,
        4.0,
        2.0,
        1.0,
        1.0,
        2.5,
        2.0,
        0.8,
        0.8,
        0.8,
        1.2,
        2.0,
        3.0,
        3.5,
        3.0,
        1.5,
        0.6,
    ]
)
# When people browse the shop (local hour of day).
BROWSING_HOUR_WEIGHTS = np.array(
    [
        0.4,
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        1.0,
        1.5,
        1.8,
        2.0,
        2.2,
        2.5,
        2.3,
        2.0,
        2.0,
        2.1,
        2.4,
        2.8,
        3.4,
        3.6,
        3.0,
        2.0,
        1.0,
    ]
)
PROXY_NONE, PROXY_APPLE, PROXY_GOOGLE = 0, 1, 2
FIRST_CUSTOMER_ID = 100_001  # shop customer_id of person 0


@dataclass
class People:
    """One entry per person (the first `customers` are real people, then test accounts)."""

    seed: int
    customers: int
    start_ms: int
    archetype: np.ndarray  # int8 index into ARCHETYPES (TEST for test accounts)
    timezone: np.ndarray  # int8 index into TIMEZONES
    preferred_how: np.ndarray  # int16 local hour-of-week 0..167
    first_name: np.ndarray  # int16 index into FIRST_NAMES
    last_name: np.ndarray
    email_pattern: np.ndarray
    email_domain: np.ndarray
    phone: np.ndarray  # int64, ten digits
    engagement: np.ndarray  # float, multiplies open and browsing rates
    spend: np.ndarray  # float, multiplies order rates
    registered_ms: np.ndarray  # shop sign-up (NEVER: no shop account)
    subscribed_ms: np.ndarray  # ESP list sign-up (NEVER: never subscribed)
    crm_created_ms: np.ndarray  # CRM contact created (NEVER: not in the CRM)
    proxy: np.ndarray  # PROXY_* kind of mail privacy proxy
    mailbox_dead: np.ndarray  # bool: hard-bounces
    devices: np.ndarray  # int8 1..4 browsers/devices (one anonymousId each)
    mail_agent: np.ndarray
    web_agent: np.ndarray
    shop_email_style: np.ndarray  # 0 as-is, 1 mixed case, 2 padded with spaces, 3 invalid
    crm_email_style: np.ndarray
    esp_email_upper: np.ndarray  # bool
    shop_phone_style: np.ndarray  # 0 formatted, 1 digits, 2 missing, 3 placeholder
    crm_phone_style: np.ndarray  # 0 E.164, 1 missing, 2 placeholder, 3 an older/different number
    crm_name_style: np.ndarray  # 0 same, 1 nickname, 2 lower case, 3 missing
    crm_timezone_known: np.ndarray  # bool
    dup_person: np.ndarray  # person index of each duplicate CRM contact
    dup_created_ms: np.ndarray
    dup_other_email: np.ndarray  # bool: the duplicate used a work address instead of a case variant

    @property
    def size(self) -> int:
        return len(self.archetype)

    @property
    def contacts(self) -> int:
        """Number of CRM contact slots: one per person (maybe unused) plus the duplicates."""
        return self.size + len(self.dup_person)

    def customer_ids(self, people: np.ndarray) -> np.ndarray:
        return FIRST_CUSTOMER_ID + np.asarray(people, dtype=np.int64)

    @staticmethod
    def contact_id(slot: int) -> str:
        return f"crm-{slot + 1:07d}"

    def contact_person(self, contacts: np.ndarray) -> np.ndarray:
        contacts = np.asarray(contacts, dtype=np.int64)
        dup = contacts >= self.size
        out = contacts.copy()
        out[dup] = self.dup_person[contacts[dup] - self.size]
        return out

    def esp_profile_ids(self, people: np.ndarray) -> list[str]:
        # multiplying by an odd constant modulo 2**40 is a bijection: unique, yet not the row number
        codes = (
            np.asarray(people, dtype=np.uint64) * np.uint64(0x5DEECE66D)
            + np.uint64((self.seed * 7919) % (1 << 40))
        ) & np.uint64((1 << 40) - 1)
        return [f"esp-{code:010x}" for code in codes.tolist()]

    def anonymous_ids(self, people: np.ndarray, device: np.ndarray) -> list[str]:
        key = np.asarray(people, dtype=np.uint64) * np.uint64(8) + np.asarray(device, dtype=np.uint64)
        high = randomness.hash64(key, self.seed * 31 + 1).tolist()
        low = randomness.hash64(key, self.seed * 31 + 2).tolist()
        out = []
        for h, lo in zip(high, low, strict=True):
            text = f"{h:016x}{lo:016x}"
            out.append(f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}")
        return out

    def canonical_emails(self, people: np.ndarray) -> list[str]:
        out = []
        for p in np.asarray(people, dtype=np.int64).tolist():
            if p >= self.customers:
                out.append(vocab.TEST_EMAILS[(p - self.customers) % len(vocab.TEST_EMAILS)].strip().lower())
                continue
            first = vocab.FIRST_NAMES[self.first_name[p]].lower()
            last = vocab.LAST_NAMES[self.last_name[p]].lower().replace("'", "").replace("ü", "u")
            pattern = self.email_pattern[p]
            local = (
                f"{first}.{last}{p + 1}",
                f"{first}{last}{p + 1}",
                f"{first[0]}{last}{p + 1}",
                f"{first}_{last}{p + 1}",
            )[pattern]
            out.append(f"{local}@{vocab.EMAIL_DOMAINS[self.email_domain[p]]}")
        return out

    def work_email(self, person: int) -> str:
        first = vocab.FIRST_NAMES[self.first_name[person]].lower()
        last = vocab.LAST_NAMES[self.last_name[person]].lower().replace("'", "").replace("ü", "u")
        return f"{first}.{last}@{vocab.WORK_DOMAINS[person % len(vocab.WORK_DOMAINS)]}"


def _choice(rng: np.random.Generator, weights, size: int) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(weights), size=size, p=weights / weights.sum())


def build_people(seed: int, customers: int, start_ms: int) -> People:
    rng = randomness.rng(seed, randomness.TRAITS)
    n_test = max(3, customers // 1000)
    size = customers + n_test
    archetype = np.concatenate(
        [_choice(rng, [b.share for b in BEHAVIOURS[:TEST]], customers), np.full(n_test, TEST)]
    ).astype(np.int8)
    timezone = _choice(rng, TIMEZONE_SHARES, size).astype(np.int8)
    preferred_how = (
        _choice(rng, READING_WEEKDAY_WEIGHTS, size) * 24 + _choice(rng, READING_HOUR_WEIGHTS, size)
    ).astype(np.int16)
    first_name = rng.integers(0, len(vocab.FIRST_NAMES), size).astype(np.int16)
    last_name = rng.integers(0, len(vocab.LAST_NAMES), size).astype(np.int16)
    email_pattern = rng.integers(0, 4, size).astype(np.int8)
    email_domain = _choice(rng, vocab.EMAIL_DOMAIN_SHARES, size).astype(np.int8)
    phone = rng.integers(2_000_000_000, 9_999_999_999, size, dtype=np.int64)
    engagement = rng.lognormal(0.0, 0.6, size)
    spend = rng.lognormal(0.0, 0.35, size)

    low = np.array([b.first_seen_days[0] for b in BEHAVIOURS])[archetype]
    high = np.array([b.first_seen_days[1] for b in BEHAVIOURS])[archetype]
    first_seen_ms = start_ms + (rng.uniform(low, high) * DAY_MS).astype(np.int64)
    has_shop = archetype != EMAIL_ONLY
    registered_ms = np.where(has_shop, first_seen_ms, NEVER)
    subscribes = rng.random(size) < behaviour_array("subscribe_rate")[archetype]
    subscribed_ms = np.where(subscribes, first_seen_ms + rng.integers(0, 120_000, size), NEVER)
    in_crm = (rng.random(size) < 0.92) & (archetype != TEST)
    crm_created_ms = np.where(in_crm, first_seen_ms + rng.integers(60_000, 3 * DAY_MS, size), NEVER)

    is_gmail = email_domain == vocab.GMAIL
    uses_proxy = rng.random(size) < 0.30
    proxy = np.where(
        uses_proxy, np.where(is_gmail & (rng.random(size) < 0.4), PROXY_GOOGLE, PROXY_APPLE), PROXY_NONE
    ).astype(np.int8)
    mailbox_dead = rng.random(size) < 0.015

    dup_mask = in_crm & (rng.random(size) < 0.04)
    dup_person = np.flatnonzero(dup_mask)
    dup_created_ms = crm_created_ms[dup_person] + rng.integers(DAY_MS, 200 * DAY_MS, len(dup_person))
    dup_other_email = rng.random(len(dup_person)) < 0.2

    return People(
        seed=seed,
        customers=customers,
        start_ms=start_ms,
        archetype=archetype,
        timezone=timezone,
        preferred_how=preferred_how,
        first_name=first_name,
        last_name=last_name,
        email_pattern=email_pattern,
        email_domain=email_domain,
        phone=phone,
        engagement=engagement,
        spend=spend,
        registered_ms=registered_ms,
        subscribed_ms=np.where(archetype == TEST, NEVER, subscribed_ms),
        crm_created_ms=crm_created_ms,
        proxy=proxy,
        mailbox_dead=mailbox_dead,
        devices=(1 + rng.binomial(3, 0.35, size)).astype(np.int8),
        mail_agent=rng.integers(0, len(vocab.MAIL_USER_AGENTS), size).astype(np.int8),
        web_agent=rng.integers(0, len(vocab.WEB_USER_AGENTS), size).astype(np.int8),
        shop_email_style=_choice(rng, [0.62, 0.30, 0.04, 0.04], size).astype(np.int8),
        crm_email_style=_choice(rng, [0.80, 0.10, 0.07, 0.03], size).astype(np.int8),
        esp_email_upper=rng.random(size) < 0.04,
        shop_phone_style=_choice(rng, [0.55, 0.25, 0.15, 0.05], size).astype(np.int8),
        crm_phone_style=_choice(rng, [0.60, 0.22, 0.05, 0.13], size).astype(np.int8),
        crm_name_style=_choice(rng, [0.80, 0.10, 0.06, 0.04], size).astype(np.int8),
        crm_timezone_known=rng.random(size) < 0.6,
        dup_person=dup_person,
        dup_created_ms=dup_created_ms,
        dup_other_email=dup_other_email,
    )


def last_name_text(people: People, person: int, version: int) -> str:
    """A person's last name; a new version (a changed name) picks another one."""
    return vocab.LAST_NAMES[(int(people.last_name[person]) + 7 * version) % len(vocab.LAST_NAMES)]


def phone_digits(people: People, person: int, version: int) -> str:
    """Ten digits; a new version is a new number."""
    number = int(people.phone[person])
    if version:
        number = 2_000_000_000 + (number * (version + 1) * 7919) % 7_999_999_999
    return f"{number:010d}"
