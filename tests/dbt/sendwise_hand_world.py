"""A hand-made world small enough to reason about: who is who, and what each feature must be.

Phase 1 (as of 2026-03-31 12:00 UTC, the latest timestamp in it):
- alice: CRM crm-1 + shop 101 + ESP esp-1 + web anon a-1 (userId 101). Names differ by source
  (priority_source picks CRM's), phones differ (last_write_wins picks the shop's, newer), consent from
  CRM opt-in and the ESP profile (merge). 2 completed orders + 1 refund, 3 emails (one machine open).
- bob: shop 102 only, a single refunded order, no email events.
- carol: two CRM contacts with one email + ESP esp-3 that unsubscribed.
- dave and erin: shop 104/105 sharing the junk email test@shop.com and placeholder phone 555-555-5555.
- frank: CRM crm-6 and a web anonymousId a-6 that identified with his email (stitched via identify).
- gina: shop 107, completed orders worth 1,200 (high value).
- a shared device a-9 that signed in as 101 and 102 (must not merge alice and bob).
Phase 2 adds a CRM contact crm-9 carrying bob's email and gina's phone (bob and gina turn out to be one
person; gina's key is older and survives), a new person harry (shop 108), and more events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dbt_support import load_raw

UTC = UTC
AS_OF_1 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
AS_OF_2 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
GOOGLE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def t(day: str, hms: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}+00:00")


def _crm(cid, email, first, last, phone, opt_in, tz, created, updated, stage="customer"):
    return dict(
        contact_id=cid,
        email=email,
        first_name=first,
        last_name=last,
        phone=phone,
        lifecycle_stage=stage,
        email_opt_in=opt_in,
        timezone=tz,
        created_at=created,
        updated_at=updated,
    )


def _shop(cid, email, first, last, phone, marketing, created, updated):
    return dict(
        customer_id=cid,
        email=email,
        first_name=first,
        last_name=last,
        phone=phone,
        accepts_marketing=marketing,
        created_at=created,
        updated_at=updated,
    )


def _order(oid, cid, status, total, at):
    return dict(
        order_id=oid,
        customer_id=cid,
        status=status,
        order_total=total,
        currency="usd",
        ordered_at=at,
        created_at=at,
        updated_at=at,
    )


def _item(iid, oid, pid, qty, price, at):
    return dict(
        order_item_id=iid,
        order_id=oid,
        product_id=pid,
        quantity=qty,
        unit_price=price,
        created_at=at,
        updated_at=at,
    )


def _esp(eid, etype, profile, email, message, at, ua=None, bounce=None):
    return dict(
        event_id=eid,
        event_type=etype,
        profile_id=profile,
        email=email,
        campaign_id="camp-" + message,
        message_id=message,
        event_timestamp=at,
        user_agent=ua,
        bounce_type=bounce,
    )


def _page(mid, anon, user, at, path="/"):
    return dict(
        message_id=mid,
        type="page",
        anonymous_id=anon,
        user_id=user,
        event_timestamp=at,
        received_at=at + timedelta(seconds=1),
        page_path=path,
        properties={"path": path},
        context={"userAgent": BROWSER, "timezone": "UTC"},
    )


def _identify(mid, anon, user, at, email, first=None, last=None):
    return dict(
        message_id=mid,
        type="identify",
        anonymous_id=anon,
        user_id=user,
        event_timestamp=at,
        received_at=at,
        traits={"email": email, "first_name": first, "last_name": last},
        context={"userAgent": BROWSER},
    )


PRODUCTS = [
    dict(
        product_id=1,
        sku="SKU-1",
        name="Trail shoe",
        category="Shoes",
        price=100,
        created_at=t("2025-01-01"),
        updated_at=t("2025-01-01"),
    ),
    dict(
        product_id=2,
        sku="SKU-2",
        name="Rain jacket",
        category="Outdoor Gear",
        price=50.5,
        created_at=t("2025-01-01"),
        updated_at=t("2025-01-01"),
    ),
    dict(
        product_id=3,
        sku="SKU-3",
        name="Socks",
        category="Accessories",
        price=10,
        created_at=t("2025-01-01"),
        updated_at=t("2025-01-01"),
    ),
]

PHASE_1 = {
    "shop_products": PRODUCTS,
    "crm_contacts": [
        _crm(
            "crm-1",
            "  ALICE@Mail.org ",
            "Alice",
            "Smith",
            "(415) 555-0101",
            True,
            "America/Los_Angeles",
            t("2025-01-01"),
            t("2026-03-01"),
        ),
        _crm(
            "crm-2",
            "carol@x.com",
            "Carol",
            None,
            None,
            True,
            "Europe/Berlin",
            t("2025-03-01"),
            t("2025-03-02"),
        ),
        _crm(
            "crm-3", "Carol@X.com", "Caroline", "Jones", None, False, None, t("2025-04-01"), t("2026-03-25")
        ),
        _crm("crm-6", "frank@ex.com", "Frank", "Miller", None, False, None, t("2025-05-01"), t("2025-05-01")),
    ],
    "shop_customers": [
        _shop(
            101, "alice@mail.org", "Ally", "Smith", "+1 415 555 0199", False, t("2025-02-01"), t("2026-03-20")
        ),
        _shop(102, "bob@mail.net", "Bob", "Brown", None, True, t("2025-06-01"), t("2025-06-01")),
        _shop(104, "test@shop.com", "Dave", "Davis", "555-555-5555", True, t("2025-07-01"), t("2025-07-01")),
        _shop(105, "TEST@shop.com", "Erin", "Evans", "555.555.5555", True, t("2025-07-02"), t("2025-07-02")),
        _shop(107, "gina@ex.com", "Gina", "Green", "212-555-0107", True, t("2025-02-01"), t("2025-02-01")),
    ],
    "shop_orders": [
        _order(1001, 101, "completed", 100.00, t("2026-03-10")),
        _order(1002, 101, "completed", 50.50, t("2026-03-21", "08:00:00")),
        _order(1003, 101, "refunded", 30.00, t("2026-03-25")),
        _order(1004, 102, "refunded", 40.00, t("2026-02-01")),
        _order(1007, 107, "completed", 700.00, t("2025-12-01")),
        _order(1008, 107, "completed", 500.00, t("2026-01-15")),
    ],
    "shop_order_items": [
        _item(1, 1001, 1, 1, 100, t("2026-03-10")),
        _item(2, 1002, 2, 1, 50.5, t("2026-03-21")),
        _item(3, 1003, 3, 3, 10, t("2026-03-25")),
        _item(4, 1004, 3, 4, 10, t("2026-02-01")),
        _item(5, 1007, 1, 7, 100, t("2025-12-01")),
        _item(6, 1008, 2, 10, 50, t("2026-01-15")),
    ],
    "esp_events": [
        # alice: m1 opened by Apple-style prefetch 5 s after delivery then by her; m2 opened by Google's
        # image proxy and by her, and clicked; m3 not opened. Plus an old message m0 (60 days ago).
        _esp("e01", "sent", "esp-1", "alice@mail.org", "m0", t("2026-01-30")),
        _esp("e02", "delivered", "esp-1", "alice@mail.org", "m0", t("2026-01-30", "12:00:01")),
        _esp("e03", "open", "esp-1", "alice@mail.org", "m0", t("2026-01-30", "18:00:00"), BROWSER),
        _esp("e10", "sent", "esp-1", "alice@mail.org", "m1", t("2026-03-20")),
        _esp("e11", "delivered", "esp-1", "alice@mail.org", "m1", t("2026-03-20", "12:00:02")),
        _esp("e12", "open", "esp-1", "alice@mail.org", "m1", t("2026-03-20", "12:00:07"), "Mozilla/5.0"),
        _esp("e13", "open", "esp-1", "alice@mail.org", "m1", t("2026-03-20", "19:00:00"), BROWSER),
        _esp("e20", "sent", "esp-1", "alice@mail.org", "m2", t("2026-03-25")),
        _esp("e21", "delivered", "esp-1", "alice@mail.org", "m2", t("2026-03-25", "12:00:01")),
        _esp("e22", "open", "esp-1", "alice@mail.org", "m2", t("2026-03-25", "15:00:00"), GOOGLE_PROXY),
        _esp("e23", "open", "esp-1", "alice@mail.org", "m2", t("2026-03-26", "08:00:00"), BROWSER),
        _esp("e24", "click", "esp-1", "alice@mail.org", "m2", t("2026-03-26", "08:00:30"), BROWSER),
        _esp("e30", "sent", "esp-1", "alice@mail.org", "m3", t("2026-03-30")),
        _esp("e31", "delivered", "esp-1", "alice@mail.org", "m3", t("2026-03-30", "12:00:01")),
        # carol: one message, then unsubscribed.
        _esp("e40", "sent", "esp-3", "carol@x.com", "m4", t("2026-03-01")),
        _esp("e41", "delivered", "esp-3", "carol@x.com", "m4", t("2026-03-01", "12:00:01")),
        _esp("e42", "unsubscribe", "esp-3", "carol@x.com", "m4", t("2026-03-02")),
        _esp("e42", "unsubscribe", "esp-3", "carol@x.com", "m4", t("2026-03-02")),  # duplicate delivery
    ],
    "web_events": [
        # alice: 3 sessions on 2 days (a-1, userId 101).
        _page("w01", "a-1", "101", t("2026-03-29", "10:00:00"), "/"),
        _page("w02", "a-1", "101", t("2026-03-29", "10:05:00"), "/shoes"),
        _page("w03", "a-1", "101", t("2026-03-29", "10:12:00"), "/cart"),
        _page("w04", "a-1", "101", t("2026-03-29", "15:00:00"), "/"),
        _page("w05", "a-1", "101", t("2026-03-30", "09:00:00"), "/"),
        _page("w06", "a-1", "101", t("2026-03-30", "09:01:30"), "/jackets"),
        _page("w06", "a-1", "101", t("2026-03-30", "09:01:30"), "/jackets"),  # duplicate message
        # frank identifies on a-6.
        _page("w20", "a-6", None, t("2026-03-15", "10:00:00")),
        _identify("w21", "a-6", None, t("2026-03-15", "10:01:00"), "Frank@Ex.com", "Frank", "Miller"),
        # a shared device signing in as alice and as bob.
        _page("w30", "a-9", "101", t("2026-03-05", "10:00:00")),
        _page("w31", "a-9", "102", t("2026-03-06", "10:00:00")),
        # an anonymous visitor who never identified: not a customer.
        _page("w40", "a-40", None, t("2026-03-31", "12:00:00")),
    ],
}

PHASE_2 = {
    "crm_contacts": [
        _crm(
            "crm-9",
            "bob@mail.net",
            "Robert",
            "Brown",
            "(212) 555-0107",
            True,
            None,
            t("2026-04-01"),
            t("2026-04-01"),
        ),
    ],
    "shop_customers": [
        _shop(108, "harry@ex.com", "Harry", "Hill", None, True, t("2026-04-02"), t("2026-04-02")),
    ],
    "shop_orders": [_order(1009, 108, "completed", 20.00, t("2026-04-05"))],
    "shop_order_items": [_item(7, 1009, 3, 2, 10, t("2026-04-05"))],
    "esp_events": [
        _esp("e50", "sent", "esp-1", "alice@mail.org", "m5", t("2026-04-08")),
        _esp("e51", "delivered", "esp-1", "alice@mail.org", "m5", t("2026-04-08", "12:00:01")),
    ],
    "web_events": [
        _page("w50", "a-1", "101", t("2026-04-10", "12:00:00")),
        # late arrivals from March: one extends the 10:00 session of the 29th, one starts the 30th's earlier
        _page("w51", "a-1", "101", t("2026-03-29", "10:40:00"), "/cart"),
        _page("w52", "a-1", "101", t("2026-03-30", "08:40:00"), "/"),
    ],
}


def load_phase(url: str, phase: int) -> None:
    data = PHASE_1 if phase == 1 else PHASE_2
    for table, rows in data.items():
        load_raw(url, table, rows)


# Who is who (the hand-made ground truth), phase 1.
PEOPLE: dict[str, dict[str, list]] = {
    "alice": {"crm": ["crm-1"], "shop": [101], "esp": ["esp-1"], "anon": ["a-1"]},
    "bob": {"crm": [], "shop": [102], "esp": [], "anon": []},
    "carol": {"crm": ["crm-2", "crm-3"], "shop": [], "esp": ["esp-3"], "anon": []},
    "dave": {"crm": [], "shop": [104], "esp": [], "anon": []},
    "erin": {"crm": [], "shop": [105], "esp": [], "anon": []},
    "frank": {"crm": ["crm-6"], "shop": [], "esp": [], "anon": ["a-6"]},
    "gina": {"crm": [], "shop": [107], "esp": [], "anon": []},
}
SHARED_ANONYMOUS_IDS = {"a-9"}
