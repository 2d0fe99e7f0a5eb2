"""The CRM's bulk export: paginated JSON pages, a full export on the first day, then daily deltas.

The CRM is a second, older record of the same people: other spellings, other phone numbers, stale
duplicates, missing fields; and it lags the shop and the ESP (stage and opt-in change a day later).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from dagster_project.synthetic import randomness, vocab
from dagster_project.synthetic.clock import DAY_MS, iso, iso_one
from dagster_project.synthetic.context import Day, Population
from dagster_project.synthetic.state import WorldState
from dagster_project.synthetic.traits import COUNTRY_CODES, EMAIL_ONLY, TIMEZONES, People, phone_digits

STAGES = ("subscriber", "lead", "customer", "churned")
SUBSCRIBER, LEAD, CUSTOMER, CHURNED = range(4)
PAGE_SIZE = 1000
CHURN_AFTER_MS = 120 * DAY_MS
PHONE_CHANGE_RATE = 0.002
EXPORT_BEFORE_MIDNIGHT_MS = 30 * 60_000  # the nightly export runs at 23:30 UTC


def _created_ms(population: Population) -> np.ndarray:
    people = population.people
    return np.concatenate([people.crm_created_ms, people.dup_created_ms])


def _desired(population: Population, state: WorldState, at_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Lifecycle stage and opt-in that the CRM would show for each person at `at_ms`."""
    people = population.people
    stage = np.full(people.size, LEAD, np.int8)
    stage[people.archetype == EMAIL_ONLY] = SUBSCRIBER
    buyer = state.completed_orders > 0
    stage[buyer] = CUSTOMER
    stage[buyer & (state.last_order_ms < at_ms - CHURN_AFTER_MS)] = CHURNED
    opt_in = (people.subscribed_ms <= at_ms) & (state.suppressed_ms > at_ms)
    return stage, opt_in


def crm_day(seed: int, population: Population, state: WorldState, day: Day, folder: Path) -> int:
    """Apply the day's CRM changes and write its export folder; returns the number of contacts exported."""
    rng = day.rng(seed, randomness.CRM)
    people = population.people
    created = _created_ms(population)
    slots = np.arange(people.contacts)
    owner = people.contact_person(slots)
    is_primary = slots < people.size
    stage, opt_in = _desired(population, state, day.start_ms)

    new = ~state.contact_written & (created < day.end_ms - EXPORT_BEFORE_MIDNIGHT_MS)
    new_slots = np.flatnonzero(new)
    state.contact_written[new_slots] = True
    state.contact_updated_ms[new_slots] = created[new_slots]
    state.contact_stage[new_slots] = stage[owner[new_slots]]
    state.contact_opt_in[new_slots] = opt_in[owner[new_slots]]

    existing = state.contact_written & ~new
    drift = (
        existing
        & is_primary
        & ((state.contact_stage != stage[owner]) | (state.contact_opt_in != opt_in[owner]))
    )
    phone_change = existing & (rng.random(people.contacts) < PHONE_CHANGE_RATE)
    changed = np.flatnonzero(drift | phone_change)
    state.contact_stage[changed] = np.where(
        is_primary[changed], stage[owner[changed]], state.contact_stage[changed]
    )
    state.contact_opt_in[changed] = np.where(
        is_primary[changed], opt_in[owner[changed]], state.contact_opt_in[changed]
    )
    state.contact_phone_version[np.flatnonzero(phone_change)] += 1
    state.contact_updated_ms[changed] = day.start_ms + rng.integers(0, DAY_MS - 3_600_000, len(changed))

    exported = np.flatnonzero(state.contact_written) if day.index == 0 else np.union1d(new_slots, changed)
    _write_export(population, state, day, exported, folder)
    return len(exported)


def _contact_email(population: Population, slot: int, person: int) -> str | None:
    people = population.people
    canonical = population.emails[person]
    if slot >= people.size:
        k = slot - people.size
        if people.dup_other_email[k]:
            return people.work_email(person)
        return canonical.upper() if k % 2 else f"{canonical} "
    style = people.crm_email_style[person]
    if style == 1:
        return canonical.capitalize()
    if style == 2:
        return f" {canonical}"
    if style == 3:
        return None if person % 2 else canonical.replace("@", " at ")
    return canonical


def _contact(
    population: Population, state: WorldState, slot: int, person: int, created: str, updated: str
) -> dict:
    people = population.people
    first = vocab.FIRST_NAMES[people.first_name[person]]
    style = people.crm_name_style[person] if slot < people.size else 1
    if style == 1:
        first = vocab.NICKNAMES.get(first, first)
    elif style == 2:
        first = first.lower()
    last = vocab.LAST_NAMES[people.last_name[person]]
    phone_style = people.crm_phone_style[person]
    version = int(state.contact_phone_version[slot]) + (1 if phone_style == 3 else 0)
    if phone_style == 1:
        phone = None
    elif phone_style == 2:
        phone = vocab.PLACEHOLDER_PHONE_CRM
    else:
        phone = f"+{COUNTRY_CODES[people.timezone[person]]}{phone_digits(people, person, version)}"
    return {
        "id": People.contact_id(slot),
        "email": _contact_email(population, slot, person),
        "first_name": None if style == 3 else first,
        "last_name": None if style == 3 else last,
        "phone": phone,
        "lifecycle_stage": STAGES[state.contact_stage[slot]],
        "email_opt_in": bool(state.contact_opt_in[slot]),
        "timezone": TIMEZONES[people.timezone[person]] if people.crm_timezone_known[person] else None,
        "created_at": created,
        "updated_at": updated,
    }


def _write_export(population: Population, state: WorldState, day: Day, slots: np.ndarray, root: Path) -> None:
    people = population.people
    folder = root / day.date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("page-*.json"):
        stale.unlink()
    created_ms = _created_ms(population)
    total_pages = max(1, -(-len(slots) // PAGE_SIZE))
    kind = "full" if day.index == 0 else "delta"
    exported_at = iso_one(day.end_ms - EXPORT_BEFORE_MIDNIGHT_MS)
    for page in range(total_pages):
        chunk = slots[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        created, updated = iso(created_ms[chunk]), iso(state.contact_updated_ms[chunk])
        owners = people.contact_person(chunk).tolist()
        body = {
            "export_id": f"contacts-{kind}-{day.date.isoformat()}",
            "exported_at": exported_at,
            "page": page + 1,
            "total_pages": total_pages,
            "results": [
                _contact(population, state, slot, owners[k], created[k], updated[k])
                for k, slot in enumerate(chunk.tolist())
            ],
        }
        (folder / f"page-{page + 1:05d}.json").write_bytes(orjson.dumps(body))
