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
    file_days = np.array(events.file_day, dtype=np.int64)
    arrivals = np.array(events.arrival_ms, dtype=np.int64)
    is_today = file_days <= day_index
    today_lines = [events.lines[i] for i in np.flatnonzero(is_today).tolist()]
    today_arrival = [arrivals[is_today]]
    pending_file = pending_folder / f"{day.isoformat()}.tsv"
    if pending_file.exists():
        with pending_file.open("rb") as handle:
            parked = [raw.rstrip(b"\n").split(b"\t", 1) for raw in handle]
        today_arrival.append(np.array([int(arrival) for arrival, _ in parked], dtype=np.int64))
        today_lines.extend(line for _, line in parked)
    later = np.flatnonzero(~is_today)
    for file_day in np.unique(file_days[later]).tolist():
        items = later[file_days[later] == file_day].tolist()
        target = pending_folder / f"{(day + dt.timedelta(days=file_day - day_index)).isoformat()}.tsv"
        with target.open("ab") as handle:
            handle.writelines(b"%d\t%s\n" % (events.arrival_ms[i], events.lines[i]) for i in items)
    lines = _in_arrival_order(np.concatenate(today_arrival), today_lines)
    if malformed_rate > 0 and rng is not None:
        for i in np.flatnonzero(rng.random(len(lines)) < malformed_rate).tolist():
            lines[i] = _corrupt(lines[i], i)
    tmp = folder / f".{day.isoformat()}.jsonl.tmp"
    with tmp.open("wb") as handle:
        for first in range(0, len(lines), WRITE_LINES):
            handle.write(b"\n".join(lines[first : first + WRITE_LINES]) + b"\n")
    tmp.replace(folder / f"{day.isoformat()}.jsonl")
    pending_file.unlink(missing_ok=True)
    return len(lines)


WRITE_LINES = 65_536


def _in_arrival_order(arrival: np.ndarray, lines: list[bytes]) -> list[bytes]:
    """The lines sorted by (arrival, line), as sorting the pairs would: numpy sorts, ties by their text."""
    order = np.argsort(arrival, kind="stable")
    ordered = arrival[order]
    out = [lines[i] for i in order.tolist()]
    tie_starts = np.flatnonzero(np.diff(ordered) == 0)
    if len(tie_starts):
        # runs of equal arrival: [start, end) over `out`
        starts = tie_starts[np.r_[True, np.diff(tie_starts) > 1]]
        for start in starts.tolist():
            end = start + 1
            while end < len(ordered) and ordered[end] == ordered[start]:
                end += 1
            out[start:end] = sorted(out[start:end])
    return out


def _corrupt(line: bytes, i: int) -> bytes:
    kind = i % 3
    if kind == 0:
        return line[: len(line) // 2]  # truncated JSON
    if kind == 1:
        return b"not json: " + line[:40]
    return b"[" + line + b"]"  # valid JSON, wrong shape
