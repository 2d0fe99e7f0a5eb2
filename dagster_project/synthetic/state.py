"""What changes while the world runs, saved between runs so that a world can be extended day by day.

Kept in `<world>/.generator/` (state.npz plus pending event lines for days not written yet); it is the
generator's memory, not a source, and the pipeline never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from dagster_project.synthetic.clock import NEVER
from dagster_project.synthetic.traits import People

SUPPRESSED_UNSUBSCRIBE, SUPPRESSED_BOUNCE, SUPPRESSED_COMPLAINT = 1, 2, 3


@dataclass
class WorldState:
    # shop customers
    customer_written: np.ndarray  # bool per person
    customer_updated_ms: np.ndarray
    customer_phone_version: np.ndarray
    customer_name_version: np.ndarray
    accepts_marketing: np.ndarray
    completed_orders: np.ndarray
    last_order_ms: np.ndarray
    # web
    web_user_seen: np.ndarray  # bool: the userId appeared in web events
    devices_seen: np.ndarray  # bitmask of devices whose anonymousId appeared
    # ESP
    esp_seen: np.ndarray  # bool: the profile appeared in ESP events
    suppressed_ms: np.ndarray  # when the person stopped being mailable (NEVER: still mailable)
    suppressed_reason: np.ndarray
    # CRM, per contact slot
    contact_written: np.ndarray
    contact_updated_ms: np.ndarray
    contact_stage: np.ndarray
    contact_opt_in: np.ndarray
    contact_phone_version: np.ndarray
    # shop catalogue and orders
    product_price_cents: np.ndarray
    product_updated_ms: np.ndarray
    refund_order_ids: np.ndarray
    refund_due_ms: np.ndarray
    next_order_id: np.ndarray  # 0-d arrays so that everything lives in one npz
    next_order_item_id: np.ndarray

    @classmethod
    def empty(cls, people: People, products: int) -> WorldState:
        n, c = people.size, people.contacts
        return cls(
            customer_written=np.zeros(n, bool),
            customer_updated_ms=np.full(n, NEVER, np.int64),
            customer_phone_version=np.zeros(n, np.int16),
            customer_name_version=np.zeros(n, np.int16),
            accepts_marketing=people.subscribed_ms != NEVER,
            completed_orders=np.zeros(n, np.int32),
            last_order_ms=np.full(n, -1, np.int64),
            web_user_seen=np.zeros(n, bool),
            devices_seen=np.zeros(n, np.uint8),
            esp_seen=np.zeros(n, bool),
            suppressed_ms=np.full(n, NEVER, np.int64),
            suppressed_reason=np.zeros(n, np.int8),
            contact_written=np.zeros(c, bool),
            contact_updated_ms=np.full(c, NEVER, np.int64),
            contact_stage=np.zeros(c, np.int8),
            contact_opt_in=np.zeros(c, bool),
            contact_phone_version=np.zeros(c, np.int16),
            product_price_cents=np.zeros(products, np.int64),
            product_updated_ms=np.zeros(products, np.int64),
            refund_order_ids=np.zeros(0, np.int64),
            refund_due_ms=np.zeros(0, np.int64),
            next_order_id=np.array(1, np.int64),
            next_order_item_id=np.array(1, np.int64),
        )

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "state.tmp.npz"
        np.savez(tmp, **{f.name: getattr(self, f.name) for f in fields(self)})
        tmp.replace(folder / "state.npz")

    @classmethod
    def load(cls, folder: Path) -> WorldState:
        with np.load(folder / "state.npz") as data:
            return cls(**{f.name: data[f.name] for f in fields(cls)})

    def take_order_ids(self, count: int) -> np.ndarray:
        first = int(self.next_order_id)
        self.next_order_id = np.array(first + count, np.int64)
        return np.arange(first, first + count, dtype=np.int64)

    def take_order_item_ids(self, count: int) -> np.ndarray:
        first = int(self.next_order_item_id)
        self.next_order_item_id = np.array(first + count, np.int64)
        return np.arange(first, first + count, dtype=np.int64)

    def suppress(self, people: np.ndarray, at_ms: np.ndarray, reason: int) -> None:
        """Record unsubscribes/bounces/complaints; the earliest one counts."""
        for person, moment in zip(np.asarray(people).tolist(), np.asarray(at_ms).tolist(), strict=True):
            if moment < self.suppressed_ms[person]:
                self.suppressed_ms[person] = moment
                self.suppressed_reason[person] = reason
