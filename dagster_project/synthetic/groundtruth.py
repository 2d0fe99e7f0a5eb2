"""Ground truth: who is who, and the latent traits behind their behaviour (read only by evaluations)."""

from __future__ import annotations

import csv
import io
import json
import re
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
    customer_ids = list(map(str, people.customer_ids(everyone).tolist()))
    archetypes = np.array([*ARCHETYPES, TEST_ACCOUNT], dtype=object)
    columns = (
        person_ids(everyone),
        archetypes[np.minimum(people.archetype, len(ARCHETYPES))].tolist(),
        np.array(TIMEZONES, dtype=object)[people.timezone].tolist(),
        list(map(str, people.preferred_how.tolist())),
        population.emails,
        _where(state.customer_written, customer_ids),
        [";".join(contacts[p]) if p in contacts else "" for p in range(people.size)],
        _where(state.esp_seen, population.esp_ids),
        _where(state.web_user_seen, customer_ids),
        [";".join(anonymous[p]) if p in anonymous else "" for p in range(people.size)],
        np.where(everyone >= people.customers, "true", "false").tolist(),
    )
    tmp = folder / "people.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PEOPLE_COLUMNS)
        lines = list(map(",".join, zip(*columns, strict=True)))
        commas = len(columns) - 1
        for p, line in enumerate(lines):
            if line.count(",") != commas or _NEEDS_QUOTES.search(line):  # a field csv would quote
                lines[p] = _csv_line([column[p] for column in columns])
        handle.writelines(f"{line}\r\n" for line in lines)
    tmp.replace(folder / "people.csv")
    return people.size


_NEEDS_QUOTES = re.compile(r'["\r\n]')


def _where(mask: np.ndarray, values: list[str]) -> list[str]:
    return [value if seen else "" for value, seen in zip(values, mask.tolist(), strict=True)]


def _csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue()[:-2]


def write_world(meta: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "world.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / "world.json")


def read_world(folder: Path) -> dict | None:
    path = folder / "world.json"
    return json.loads(path.read_text()) if path.exists() else None
