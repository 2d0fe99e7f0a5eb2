"""Ground truth: who is who, and the latent traits behind their behaviour (read only by evaluations)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dagster_project.synthetic.context import Population
from dagster_project.synthetic.state import WorldState
from dagster_project.synthetic.traits import ARCHETYPES, TEST_ACCOUNT, TIMEZONES

PEOPLE_COLUMNS = (
    "person_id",
    "archetype",
    "timezone",
    "preferred_hour_of_week_local",
    "canonical_email",
    "shop_customer_id",
    "crm_contact_ids",
    "esp_profile_id",
    "web_user_id",
    "anonymous_ids",
    "is_test_account",
)


def person_ids(people: np.ndarray) -> list[str]:
    return [f"P{p + 1:07d}" for p in np.asarray(people).tolist()]


def write_people(population: Population, state: WorldState, folder: Path) -> int:
    """people.csv: every person with the identifiers that exist in the sources so far."""
    people = population.people
    folder.mkdir(parents=True, exist_ok=True)
    contacts: dict[int, list[str]] = {}
    written = np.flatnonzero(state.contact_written)
    for slot, owner in zip(written.tolist(), people.contact_person(written).tolist(), strict=True):
        contacts.setdefault(owner, []).append(people.contact_id(slot))
    anonymous: dict[int, list[str]] = {}
    for device in range(8):
        owners = np.flatnonzero((state.devices_seen >> device) & 1)
        ids_of_device = people.anonymous_ids(owners, np.full(len(owners), device))
        for owner, anonymous_id in zip(owners.tolist(), ids_of_device, strict=True):
            anonymous.setdefault(owner, []).append(anonymous_id)
    everyone = np.arange(people.size)
    ids = person_ids(everyone)
    customer_ids = people.customer_ids(everyone).tolist()
    tmp = folder / "people.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PEOPLE_COLUMNS)
        for p in range(people.size):
            arche = int(people.archetype[p])
            writer.writerow(
                (
                    ids[p],
                    ARCHETYPES[arche] if arche < len(ARCHETYPES) else TEST_ACCOUNT,
                    TIMEZONES[people.timezone[p]],
                    int(people.preferred_how[p]),
                    population.emails[p],
                    customer_ids[p] if state.customer_written[p] else "",
                    ";".join(contacts.get(p, [])),
                    population.esp_ids[p] if state.esp_seen[p] else "",
                    str(customer_ids[p]) if state.web_user_seen[p] else "",
                    ";".join(anonymous.get(p, [])),
                    "true" if p >= people.customers else "false",
                )
            )
    tmp.replace(folder / "people.csv")
    return people.size


def write_world(meta: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "world.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / "world.json")


def read_world(folder: Path) -> dict | None:
    path = folder / "world.json"
    return json.loads(path.read_text()) if path.exists() else None
