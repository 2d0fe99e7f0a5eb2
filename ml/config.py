"""Typed configuration of the ML models (frozen dataclasses, so a config can be hashed into a version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ml.registry import json_ready

DEFAULT_SEGMENT_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "purchase_frequency",
    "email_open_rate_90d",
    "email_click_rate_90d",
    "web_sessions_30d",
    "days_since_registration",
    "engagement_score",
)
# Heavy-tailed, non-negative features: log1p before scaling.
DEFAULT_LOG_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "purchase_frequency",
    "web_sessions_30d",
    "web_page_views_30d",
    "avg_session_duration_seconds",
    "days_since_registration",
    "days_since_first_order",
    "lifetime_value",
    "email_sends_30d",
    "email_sends_90d",
    "email_unique_opens_30d",
    "email_unique_opens_90d",
    "email_unique_clicks_30d",
    "email_unique_clicks_90d",
    "active_days_30d",
)


@dataclass(frozen=True)
class SegmentNamingConfig:
    """Absolute thresholds that name a segment from its members' median values (see ml/README.md).

    A name only uses signals the data has: no email word without email events, no web word without
    web sessions. Segments that end up with the same name are one segment."""

    active_days: int = 90
    """Median days since the last order at most this: "Active"."""
    lapsed_days: int = 180
    """Above this: "Lapsed"; between active_days and this: "At-Risk"."""
    repeat_orders: int = 2
    """Median completed orders at least this: "Repeat Buyers", else "One-Time Buyers"."""
    high_value_monetary: float = 1000.0
    """Median completed revenue (the shop's currency) at least this: "High-Value"."""
    new_customer_days: int = 45
    """Median days since registration below this (and buyers): "New Buyers"."""
    email_engaged_open_rate: float = 0.2
    """Median 90-day human open rate at least this: "Email-Engaged" (only with email data)."""
    web_active_sessions_30d: float = 2.0
    """Median web sessions in 30 days at least this: "Web-Active" (only with web data)."""


@dataclass(frozen=True)
class SegmentationConfig:
    features: tuple[str, ...] = DEFAULT_SEGMENT_FEATURES
    log_features: tuple[str, ...] = DEFAULT_LOG_FEATURES
    pca_variance: float | None = 0.95
    """Keep the principal components explaining this share of variance; None skips PCA."""
    k_min: int = 4
    """Fewer than four groups are too coarse to target differently; the evidence picks k above it."""
    k_max: int = 10
    selection_sample_size: int = 12_000
    """Customers sampled to fit each candidate k."""
    silhouette_sample_size: int = 3_000
    stability_rounds: int = 2
    """Pairs of subsamples per k; the stability is the mean ARI between the two fits of each pair."""
    stability_subsample: float = 0.7
    min_stability: float = 0.8
    """k is chosen by silhouette among the k whose stability reaches this; else the most stable k."""
    fit_sample_size: int = 200_000
    """The final centroids are fitted on at most this many customers, then everyone is assigned."""
    n_init: int = 3
    max_match_distance: float = 1.5
    """Hungarian matching to the previous run: pairs further apart (scaled units) get a new id."""
    random_state: int = 42
    n_threads: int = 1
    """OpenMP threads for KMeans. Small fits on a busy 2-core machine run ~30x slower with 2 threads
    (spin-waiting), so one is the safe default."""
    naming: SegmentNamingConfig = field(default_factory=SegmentNamingConfig)

    def parameters(self) -> dict[str, Any]:
        return json_ready(asdict(self))


@dataclass(frozen=True)
class SendTimeConfig:
    min_user_responses: int = 1
    """Real opens/clicks a customer needs for a user-level prediction."""
    min_level_responses: int = 30
    """Responses a segment/time zone/the whole base needs before its distribution is used."""
    user_prior_strength: float = 10.0
    """Empirical-Bayes pseudo-responses pulling a customer toward the segment/time-zone prior."""
    segment_prior_strength: float = 50.0
    timezone_prior_strength: float = 200.0
    delay_horizon_hours: int = 168
    """Opens later than this after delivery are ignored (and bound the delay model)."""
    hour_smoothing: float = 0.25
    """Share of each response spread to each neighbouring hour (preferences are fuzzy by +/- 1 h)."""
    day_sharing: float = 0.1
    """Share of each response spread over the same local hour on the other six days."""
    default_hour_of_week: int = 34
    """Tuesday 10:00 local: the last resort when nothing has data."""
    default_timezone: str = "UTC"
    keep_previous_within: float = 0.2
    """A customer keeps the previous run's best hour while its rate is within this share of the best
    rate: a new day's few responses should not flip hours the model rates almost alike."""
    refit_every_days: int = 7
    """Daily runs score the customers whose engagement changed against the stored level rates (global,
    zone, segment, delay kernel); a run refits them on all engagement once the fit is this old."""

    def parameters(self) -> dict[str, Any]:
        return json_ready(asdict(self))


@dataclass(frozen=True)
class BacktestConfig:
    test_days: int = 21
    """Engagement in the last `test_days` before the data's as-of time is held out."""
    few_opens_threshold: int = 5


@dataclass(frozen=True)
class SegmentRefreshConfig:
    """When a run refits the segments instead of assigning customers to the stored centroids."""

    refit_every_days: int = 28
    """Refit when the stored model is this many days older than the data's as-of."""
    max_inertia_ratio: float = 1.25
    """Refit when customers' mean squared distance to their centroid grew past this multiple of the fit's."""
    max_share_shift: float = 0.05
    """Refit when any segment's share of customers moved by more than this (0.05 = 5 share points)."""

    def parameters(self) -> dict[str, Any]:
        return json_ready(asdict(self))


@dataclass(frozen=True)
class CLVConfig:
    """BG/NBD + Gamma-Gamma customer value. Below the minimums the run is `insufficient_data` (with the
    reason) and writes no predictions: a model fitted on a handful of repeaters or a few weeks of history
    would invent numbers."""

    unit_days: float = 7.0
    """Time unit inside the fits (weeks, as in the papers); predictions are in days."""
    horizon_days: int = 365
    annual_discount_rate: float = 0.10
    discount_step_days: int = 30
    churn_window_days: int = 90
    """Churn risk = P(no purchase in the next `churn_window_days`)."""
    churn_medium_from: float = 0.33
    churn_high_above: float = 0.66
    """Bands: Low < 0.33 <= Medium <= 0.66 < High."""
    min_customers: int = 100
    """Customers with at least one completed order."""
    min_repeat_customers: int = 30
    """Customers with a repeat purchase day (the Gamma-Gamma sample, and what identifies b)."""
    min_history_days: int = 60
    """Days between the first order in the data and the as-of."""
    backtest_holdout_days: int = 30
    """The backtest refits on everything before as-of - holdout and forecasts the holdout."""
    max_iter: int = 1_000
    refit_every_days: int = 7
    """Daily runs score the customers whose inputs were rebuilt against the stored fits (BG/NBD,
    Gamma-Gamma, propensity model, category shares); a run refits them on everyone once the fit is this
    old (and re-scores everyone: the others' day counts are as of their last scoring until then)."""

    def parameters(self) -> dict[str, Any]:
        return json_ready(asdict(self))


@dataclass(frozen=True)
class PropensityConfig:
    window_days: int = 30
    """Target: at least one completed order in the `window_days` after the feature date."""
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    calibration_bins: int = 10
    min_training_customers: int = 200
    min_positive_labels: int = 20
    """Fewer positives than this in the training window: no model (the run says why)."""
    category_prior_strength: float = 5.0
    """Pseudo-orders of the base's category mix added to each customer's own before the lift
    (shrunk share / base share): a single order in a rare category does not make it a top category."""
    top_categories: int = 3
    cost_per_send: float = 0.01
    """Subtracted per audience member from the expected campaign value."""
    random_state: int = 42
    n_threads: int = 1
    """OpenMP threads for the gradient boosting (see SegmentationConfig.n_threads)."""

    def parameters(self) -> dict[str, Any]:
        return json_ready(asdict(self))


@dataclass(frozen=True)
class MLConfig:
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    segment_refresh: SegmentRefreshConfig = field(default_factory=SegmentRefreshConfig)
    send_time: SendTimeConfig = field(default_factory=SendTimeConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    clv: CLVConfig = field(default_factory=CLVConfig)
    propensity: PropensityConfig = field(default_factory=PropensityConfig)
