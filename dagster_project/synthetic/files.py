"""Daily JSONL event files, written the way a collector writes them: by arrival day, in arrival order.

Events that arrive after the day being written (late webhooks, opens days after delivery) wait in
`.generator/pending/<stream>/<date>.tsv` until their day is generated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson


def json_line(record: dict) -> bytes:
    """The record as one compact JSON line (without the newline).

    orjson's result keeps a ~4 KB allocation behind a short line; copying it to an exact-size bytes
    object keeps a day of buffered events (millions at 1M customers) at its real size.
    """
    return bytes(memoryview(orjson.dumps(record)))


@dataclass
class DayEvents:
    """Event lines produced while generating one day, each with the day file it belongs to."""

    file_day: list[int] = field(default_factory=list)
    arrival_ms: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def add(self, file_day: int, arrival_ms: int, line: bytes) -> None:
        self.file_day.append(file_day)
        self.arrival_ms.append(arrival_ms)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.lines)


def write_day_file(
    events: DayEvents,
    day_index: int,
    day: dt.date,
    folder: Path,
    pending_folder: Path,
    malformed_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> int:
    """Write `folder/<day>.jsonl` (today's events + those pending for today); park later ones.

    With `malformed_rate` > 0 that share of lines (drawn from `rng`) is corrupted, to exercise
    ingestion's quarantine; by default nothing is. Returns the number of lines written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pending_folder.mkdir(parents=True, exist_ok=True)
    today: list[tuple[int, bytes]] = []
    later: dict[int, list[tuple[int, bytes]]] = {}
    for file_day, arrival, line in zip(events.file_day, events.arrival_ms, events.lines, strict=True):
        if file_day <= day_index:
            today.append((arrival, line))
        else:
            later.setdefault(file_day, []).append((arrival, line))
    pending_file = pending_folder / f"{day.isoformat()}.tsv"
    if pending_file.exists():
        with pending_file.open("rb") as handle:
            for raw in handle:
                arrival, line = raw.rstrip(b"\n").split(b"\t", 1)
                today.append((int(arrival), line))
    for file_day, items in sorted(later.items()):
        target = pending_folder / f"{(day + dt.timedelta(days=file_day - day_index)).isoformat()}.tsv"
        with target.open("ab") as handle:
            handle.writelines(b"%d\t%s\n" % (arrival, line) for arrival, line in items)
    today.sort()
    lines = [line for _, line in today]
    if malformed_rate > 0 and rng is not None:
        for i in np.flatnonzero(rng.random(len(lines)) < malformed_rate).tolist():
            lines[i] = _corrupt(lines[i], i)
    tmp = folder / f".{day.isoformat()}.jsonl.tmp"
    with tmp.open("wb") as handle:
        handle.writelines(line + b"\n" for line in lines)
    tmp.replace(folder / f"{day.isoformat()}.jsonl")
    pending_file.unlink(missing_ok=True)
    return len(lines)


def _corrupt(line: bytes, i: int) -> bytes:
    kind = i % 3
    if kind == 0:
        return line[: len(line) // 2]  # truncated JSON
    if kind == 1:
        return b"not json: " + line[:40]
    return b"[" + line + b"]"  # valid JSON, wrong shape
