import numpy as np
import pandas as pd
import pytest

from ml.config import SendTimeConfig
from ml.send_time import (
    _best_hours,
    _histograms,
    circulant,
    clean_timezones,
    delay_kernel,
    fit_send_time,
    local_hour_of_week,
    next_send_slots,
    prepare_engagement,
    shrink,
    smoothing_matrix,
    source_levels,
)

UTC = "UTC"


def test_ml_clean_timezones_flags_unknown_and_invalid_names():
    zone, known = clean_timezones(pd.Series(["Europe/Berlin", None, "Mars/Olympus"]), "UTC")
    assert list(zone) == ["Europe/Berlin", "UTC", "UTC"]
    assert list(known) == [True, False, False]


def test_ml_local_hour_of_week_handles_offsets_dst_and_half_hours():
    times = pd.Series(
        pd.to_datetime(
            ["2026-11-02T15:30Z", "2026-07-06T15:30Z", "2026-11-02T18:20Z", "2026-11-02T15:30Z", None],
            utc=True,
        )
    )
    zones = np.array(["America/New_York", "America/New_York", "Asia/Kolkata", "UTC", "UTC"], dtype=object)
    # Monday 10:30 EST, Monday 11:30 EDT, Monday 23:50 IST, Monday 15:30 UTC, missing
    assert list(local_hour_of_week(times, zones)) == [10, 11, 23, 15, -1]


def _events() -> tuple[pd.DataFrame, pd.DataFrame]:
    customers = pd.DataFrame({"customer_key": ["a", "b"], "timezone": ["UTC", None]})
    rows = [
        # customer, type, at, message, delivered, machine
        ("a", "delivered", "2026-11-02T08:00Z", "m1", "2026-11-02T08:00Z", False),
        ("a", "open", "2026-11-02T08:00:03Z", "m1", "2026-11-02T08:00Z", True),  # privacy proxy
        ("a", "open", "2026-11-02T20:10Z", "m1", "2026-11-02T08:00Z", False),
        ("a", "click", "2026-11-02T20:12Z", "m1", "2026-11-02T08:00Z", False),  # same message: not counted
        ("a", "open", "2026-11-04T09:00Z", "m2", "2026-11-03T09:00Z", False),  # delivery row missing
        ("b", "delivered", "2026-11-02T08:00Z", "m3", "2026-11-02T08:00Z", False),
        ("zz", "open", "2026-11-02T09:00Z", "m4", "2026-11-02T08:00Z", False),  # unknown customer
    ]
    events = pd.DataFrame(
        rows,
        columns=["customer_key", "event_type", "event_at", "message_id", "delivered_at", "is_machine_open"],
    )
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True, format="ISO8601")
    events["delivered_at"] = pd.to_datetime(events["delivered_at"], utc=True, format="ISO8601")
    return events, customers


def test_ml_prepare_engagement_keeps_first_real_response_per_message():
    events, customers = _events()
    engagement = prepare_engagement(events, customers, SendTimeConfig())
    assert engagement.excluded_machine_opens == 1
    assert engagement.unknown_timezones == 1
    assert engagement.unknown_customer_events == 1
    assert sorted(engagement.response_user.tolist()) == [0, 0]
    assert sorted(engagement.response_hour.tolist()) == [20, 24 + 24 + 9]  # Mon 20:10, Wed 09:00
    assert sorted(np.round(engagement.response_delay_hours, 2).tolist()) == [12.17, 24.0]
    # three deliveries: two rows plus the one implied by the m2 open
    assert len(engagement.delivery_user) == 3
    assert sorted(engagement.delivery_hour.tolist()) == [8, 8, 24 + 9]

    cutoff = pd.Timestamp("2026-11-03T00:00Z")
    before = engagement.before(cutoff)
    assert before.response_user.tolist() == [0] and len(before.delivery_user) == 2
    after = engagement.responses_from(cutoff)
    assert after["hour_of_week"].tolist() == [57]


def test_ml_delay_kernel_is_a_distribution_over_the_horizon():
    kernel = delay_kernel(np.array([0.5, 0.7, 3.2, 200.0, np.nan]), horizon=168)
    assert kernel.shape == (168,) and kernel.sum() == pytest.approx(1.0)
    assert kernel.argmax() == 0 and kernel[0] > kernel[3] > kernel[100]


def test_ml_circulant_shifts_a_delivery_by_the_delay():
    kernel = np.zeros(168)
    kernel[2] = 1.0
    histogram = np.zeros(168)
    histogram[167] = 1.0
    assert (histogram @ circulant(kernel)).argmax() == 1  # Sunday 23:00 + 2 h wraps to Monday 01:00


def test_ml_smoothing_matrix_spreads_to_neighbours_and_other_days():
    matrix = smoothing_matrix(0.25, 0.1)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert matrix[0, 0] == pytest.approx(0.9 * 0.5)
    assert matrix[0, 167] == pytest.approx(0.9 * 0.25)
    assert matrix[0, 24] == pytest.approx(0.1 / 6)


def test_ml_shrink_moves_from_prior_to_data_as_evidence_grows():
    prior = np.full(168, 2.0)
    assert shrink(np.zeros(168), np.zeros(168), prior, 10.0)[0] == pytest.approx(2.0)
    strong = shrink(np.full(168, 1000.0), np.full(168, 250.0), prior, 10.0)
    assert strong[0] == pytest.approx(4.0, rel=1e-3)


def test_ml_histograms_and_best_hours():
    counts = _histograms(np.array([1, -1, 1, 0]), np.array([5, 5, 5, -1]), 2)
    assert counts.shape == (2, 168) and counts[1, 5] == 2 and counts.sum() == 2
    weighted = _histograms(np.array([0, 0]), np.array([3, 3]), 1, weights=np.array([0.5, 0.25]))
    assert weighted[0, 3] == 0.75
    rates = np.ones((1, 168))
    rates[0, 100] = 10.0
    best, confidence = _best_hours(rates)
    assert best.tolist() == [100]
    assert confidence[0] == pytest.approx(12 / 177)


def test_ml_source_levels_follow_the_fallback_chain():
    levels = source_levels(
        response_counts=np.array([3, 0, 0, 0]),
        segment_ok=np.array([True, True, False, False]),
        zone_ok=np.array([True, True, True, False]),
        global_ok=True,
        min_user_responses=1,
    )
    assert levels.tolist() == ["user", "segment", "timezone", "global"]
    assert source_levels(np.array([0]), np.array([False]), np.array([False]), False, 1).tolist() == [
        "default"
    ]


def _planted(n_per_segment: int = 30) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Segment 1 opens on Tuesday 19:00 UTC, segment 2 on Friday 07:00; mail goes out on Mondays 09:00."""
    rng = np.random.default_rng(0)
    keys, rows = [], []
    monday = pd.Timestamp("2026-09-07T09:00Z")
    for segment, hour in ((1, 24 + 19), (2, 4 * 24 + 7)):
        for person in range(n_per_segment):
            key = f"s{segment}-{person}"
            keys.append((key, segment))
            for week in range(6):
                delivered = monday + pd.Timedelta(weeks=week)
                message = f"{key}-{week}"
                rows.append((key, "delivered", delivered, message, delivered, False))
                opened = delivered + pd.Timedelta(hours=hour - 9, minutes=int(rng.integers(0, 50)))
                rows.append((key, "open", delivered + pd.Timedelta(seconds=2), message, delivered, True))
                if person < n_per_segment - 2:  # the last two of each segment never open for real
                    rows.append((key, "open", opened, message, delivered, False))
    events = pd.DataFrame(
        rows,
        columns=["customer_key", "event_type", "event_at", "message_id", "delivered_at", "is_machine_open"],
    )
    customers = pd.DataFrame({"customer_key": [k for k, _ in keys] + ["loner"], "timezone": "UTC"})
    customers.loc[customers["customer_key"] == "loner", "timezone"] = None
    segments = pd.DataFrame({"customer_key": [k for k, _ in keys], "segment_id": [s for _, s in keys]})
    return events, customers, segments


def test_ml_fit_send_time_learns_planted_hours_and_falls_back_by_level():
    events, customers, segments = _planted()
    config = SendTimeConfig(min_level_responses=10)
    engagement = prepare_engagement(events, customers, config)
    fitted = fit_send_time(engagement, customers, segments, config)
    predictions = fitted.predictions.set_index("customer_key")
    assert predictions.loc["s1-0", "best_hour_of_week"] == 24 + 19
    assert predictions.loc["s2-0", "best_hour_of_week"] == 4 * 24 + 7
    assert predictions.loc["s1-0", "source_level"] == "user"
    # no real opens: the segment's hour, not the machine-open hour right after delivery
    assert predictions.loc["s2-29", "source_level"] == "segment"
    assert predictions.loc["s2-29", "best_hour_of_week"] == 4 * 24 + 7
    assert predictions.loc["loner", "source_level"] == "global"
    assert predictions["confidence"].between(0, 1).all()
    assert fitted.model.metrics["machine_opens_excluded"] == 360
    with pytest.raises(ValueError, match="same customers"):
        fit_send_time(engagement, customers.iloc[::-1], segments, config)
    # same inputs, same outputs
    again = fit_send_time(engagement, customers, segments, config).predictions
    pd.testing.assert_frame_equal(fitted.predictions, again)


def test_ml_fit_send_time_uses_the_default_when_nothing_has_data():
    customers = pd.DataFrame({"customer_key": ["a", "b"], "timezone": ["UTC", "Europe/Paris"]})
    events = pd.DataFrame(
        columns=["customer_key", "event_type", "event_at", "message_id", "delivered_at", "is_machine_open"]
    )
    config = SendTimeConfig(default_hour_of_week=58)
    fitted = fit_send_time(prepare_engagement(events, customers, config), customers, None, config)
    assert fitted.predictions["source_level"].tolist() == ["default", "default"]
    assert fitted.predictions["best_hour_of_week"].tolist() == [58, 58]
    assert fitted.predictions["confidence"].tolist() == [0.0, 0.0]


def test_ml_next_send_slots_are_the_next_local_occurrence_in_utc():
    as_of = pd.Timestamp("2026-11-02T12:00Z")  # a Monday
    slots = next_send_slots(np.array([34, 0, 12 + 0]), pd.Series(["Europe/Berlin", None, "UTC"]), as_of)
    assert slots["timezone"].tolist() == ["Europe/Berlin", "UTC", "UTC"]
    assert slots["local_hour"].tolist() == [10, 0, 12]
    assert slots["local_weekday"].tolist() == [1, 0, 0]
    assert slots["next_send_at_utc"].tolist() == [
        pd.Timestamp("2026-11-03T09:00Z"),  # Tuesday 10:00 CET
        pd.Timestamp("2026-11-09T00:00Z"),  # next Monday midnight
        pd.Timestamp("2026-11-09T12:00Z"),  # Monday 12:00 is not after as_of: a week later
    ]


def test_ml_next_send_slot_in_a_spring_forward_gap_moves_forward():
    slots = next_send_slots(
        np.array([6 * 24 + 2]), pd.Series(["America/New_York"]), pd.Timestamp("2027-03-10T00:00Z")
    )
    assert slots["next_send_at_utc"].iloc[0] == pd.Timestamp("2027-03-14T07:00Z")  # 03:00 EDT


def test_ml_a_previous_best_hour_is_kept_while_it_rates_nearly_as_well():
    # 21 real opens on Mondays at 10:00 UTC, 20 at 14:00 (no deliveries known: expected is flat)
    opens = [
        ("c1", "open", f"2025-03-{3 + 7 * (i % 4):02d}T10:00Z", f"m10-{i}", None, False) for i in range(21)
    ]
    opens += [
        ("c1", "open", f"2025-03-{3 + 7 * (i % 4):02d}T14:00Z", f"m14-{i}", None, False) for i in range(20)
    ]
    events = pd.DataFrame(
        opens,
        columns=["customer_key", "event_type", "event_at", "message_id", "delivered_at", "is_machine_open"],
    )
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True)
    events["delivered_at"] = pd.to_datetime(events["delivered_at"], utc=True)
    customers = pd.DataFrame({"customer_key": ["c1"], "timezone": [UTC]})
    config = SendTimeConfig()
    engagement = prepare_engagement(events, customers, config)

    def best(previous: int | None) -> int:
        previous_best = None if previous is None else np.array([previous])
        fit = fit_send_time(engagement, customers, None, config, previous_best=previous_best)
        return int(fit.predictions["best_hour_of_week"].iloc[0])

    assert best(None) == 10  # the most opens
    assert best(14) == 14  # 20 vs 21 opens: within 20 %, yesterday's hour stays
    assert best(100) == 10  # an hour without opens is not kept
