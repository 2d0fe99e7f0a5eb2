"""What every per-day generator needs: the day, and the population with its cached identifiers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dagster_project.synthetic import pieces, randomness
from dagster_project.synthetic.clock import DAY_MS, utc_offsets_ms
from dagster_project.synthetic.shop import Catalogue
from dagster_project.synthetic.traits import TIMEZONES, People


@dataclass(frozen=True)
class Day:
    index: int  # days since the world's start
    date: dt.date
    start_ms: int
    world_start_ms: int
    offsets_ms: np.ndarray = field(repr=False)  # UTC offset per TIMEZONES entry on this day

    @classmethod
    def of(cls, world_start: dt.date, world_start_ms: int, index: int) -> Day:
        date = world_start + dt.timedelta(days=index)
        return cls(
            index, date, world_start_ms + index * DAY_MS, world_start_ms, utc_offsets_ms(TIMEZONES, date)
        )

    @property
    def end_ms(self) -> int:
        return self.start_ms + DAY_MS

    def file_days(self, arrival_ms: np.ndarray) -> np.ndarray:
        return np.floor_divide(np.asarray(arrival_ms) - self.world_start_ms, DAY_MS)

    def rng(self, seed: int, stream: int) -> np.random.Generator:
        return randomness.rng(seed, randomness.DAY, self.index, stream)


@dataclass
class Population:
    people: People
    catalogue: Catalogue
    emails: list[str]  # canonical email per person
    esp_ids: list[str]  # ESP profile id per person

    @classmethod
    def of(cls, people: People, catalogue: Catalogue) -> Population:
        everyone = np.arange(people.size)
        return cls(people, catalogue, people.canonical_emails(everyone), people.esp_profile_ids(everyone))

    @cached_property
    def esp_id_bytes(self) -> np.ndarray:
        return np.array(self.esp_ids, dtype="S")

    @cached_property
    def esp_email_json(self) -> np.ndarray:
        """Each person's email as the ESP holds it (a few with upper-case parts), as a JSON string."""
        texts = []
        for email, upper in zip(self.emails, self.people.esp_email_upper.tolist(), strict=True):
            if upper:
                local, domain = email.split("@")
                email = f"{local.capitalize()}@{domain.upper()}"
            texts.append(email)
        return pieces.json_strings(texts)

    def ips(self, persons: np.ndarray, salt: int = 0) -> list[str]:
        """A stable home IP per person (and per salt: device or network)."""
        h = randomness.hash64(np.asarray(persons, dtype=np.uint64), self.people.seed * 97 + 11 + salt)
        a = 24 + (h % np.uint64(199))
        b, c, d = (
            (h >> np.uint64(16)) % np.uint64(256),
            (h >> np.uint64(24)) % np.uint64(256),
            1 + (h >> np.uint64(32)) % np.uint64(254),
        )
        return [
            f"{w}.{x}.{y}.{z}"
            for w, x, y, z in zip(a.tolist(), b.tolist(), c.tolist(), d.tolist(), strict=True)
        ]
