"""Customer lifetime value: BG/NBD purchase process (Fader, Hardie & Lee 2005) and Gamma-Gamma spend
(Fader & Hardie 2013), fitted by maximum likelihood with scipy, vectorised over customers.

Why not a library: pymc-marketing's CLV module compiles pymc/pytensor graphs (slow to start and to fit
on 2 cores at 1M customers); lifetimes is unmaintained since 2020. Both likelihoods and every prediction
used here are short closed forms, tested against the published CDNOW figures.

Time is measured in model units (`unit_days`, weekly by default) inside the fits; the summary is in days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary")


class CLVDataError(ValueError):
    """Transactions that cannot be summarised (names the column/record and the reason)."""


def repeat_purchase_summary(
    transactions: pd.DataFrame,
    end: pd.Timestamp,
    customer_column: str = "customer_key",
    time_column: str = "ordered_at",
    value_column: str = "order_total",
) -> pd.DataFrame:
    """Per customer, from transactions up to and including `end`'s calendar day, in days:
    frequency = distinct purchase days - 1 (repeat purchase days), recency = last - first purchase day,
    T = end day - first purchase day, monetary = mean value of the repeat purchase days (same-day orders
    summed; NaN for one-day customers), plus first/last purchase dates. Sorted by customer."""
    missing = [c for c in (customer_column, time_column, value_column) if c not in transactions.columns]
    if missing:
        raise CLVDataError(f"transactions lack column(s) {missing}")
    frame = transactions[[customer_column, time_column, value_column]]
    times = pd.to_datetime(frame[time_column], utc=True)
    bad_time = times.isna()
    if bad_time.any():
        row = frame[bad_time].iloc[0]
        raise CLVDataError(f"{time_column} is missing for customer {row[customer_column]!r}")
    values = pd.to_numeric(frame[value_column], errors="coerce")
    if values.isna().any():
        row = frame[values.isna()].iloc[0]
        raise CLVDataError(
            f"{value_column} {row[value_column]!r} of customer {row[customer_column]!r} is not a number"
        )
    end_day = _utc(end).normalize()
    days = times.dt.normalize()
    kept = days <= end_day
    daily = (
        pd.DataFrame({"customer": frame[customer_column][kept], "day": days[kept], "value": values[kept]})
        .groupby(["customer", "day"], sort=True)["value"]
        .sum()
        .reset_index()
    )
    grouped = daily.groupby("customer", sort=True)
    first = grouped["day"].min()
    last = grouped["day"].max()
    n_days = grouped["day"].size()
    total = grouped["value"].sum()
    first_value = grouped["value"].first()
    frequency = n_days - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = ((total - first_value) / frequency).where(frequency > 0)
    summary = pd.DataFrame(
        {
            customer_column: first.index,
            "frequency": frequency.to_numpy(dtype=np.int64),
            "recency": ((last - first).dt.days).to_numpy(dtype=float),
            "T": ((end_day - first).dt.days).to_numpy(dtype=float),
            "monetary": monetary.to_numpy(dtype=float),
            "first_purchase_at": first.to_numpy(),
            "last_purchase_at": last.to_numpy(),
        }
    )
    return summary.reset_index(drop=True)


def purchase_days_between(
    transactions: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    customer_column: str = "customer_key",
    time_column: str = "ordered_at",
) -> pd.Series:
    """Distinct purchase days per customer with start < day <= end (calendar days), for holdouts."""
    days = pd.to_datetime(transactions[time_column], utc=True).dt.normalize()
    window = (days > _utc(start).normalize()) & (days <= _utc(end).normalize())
    pairs = pd.DataFrame({"customer": transactions[customer_column][window], "day": days[window]})
    return pairs.drop_duplicates().groupby("customer").size()


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# --- BG/NBD -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    """Total log-likelihood at the optimum (model time units)."""
    n_customers: int
    converged: bool
    iterations: int
    unit_days: float = 1.0
    at_bound: bool = False
    """A parameter ran to its bound: the optimum is a limit (e.g. no drop-out seen: a -> 0, or equal
    purchase rates: r, alpha -> inf with r / alpha fixed). The predictions of that limit still hold."""

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "r": self.r,
            "alpha": self.alpha,
            "a": self.a,
            "b": self.b,
            "log_likelihood": self.log_likelihood,
            "n_customers": self.n_customers,
            "converged": self.converged,
            "iterations": self.iterations,
            "unit_days": self.unit_days,
            "at_bound": self.at_bound,
        }


def bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    no_death = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    death = np.full_like(x, -np.inf)
    death[repeat] = np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    return head + np.logaddexp(no_death, death)


def _bgnbd_objective(
    log_params: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    w: np.ndarray,
    levels: np.ndarray,
    level_of: np.ndarray,
    level_weight: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Minus the weighted mean log-likelihood and its gradient in log-parameters. The special functions
    depend on x alone, so they are evaluated once per distinct x (`levels`) and weighted by its count."""
    r, alpha, a, b = np.exp(log_params)
    ux, W = levels, level_weight
    repeat = x > 0
    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    inv_b = 1.0 / np.maximum(b + ux - 1, 1e-300)
    no_death = -(r + x) * log_at
    death = np.where(repeat, (np.log(a) + np.log(inv_b))[level_of] - (r + x) * log_atx, -np.inf)
    mix = np.logaddexp(no_death, death)
    w3 = w * np.exp(no_death - mix)
    w4 = w * np.exp(death - mix)
    head = gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + betaln(a, b + ux) - betaln(a, b)
    ll = (W * head).sum() + (w * mix).sum()
    d_r = (W * (digamma(r + ux) - digamma(r) + np.log(alpha))).sum() - (w3 * log_at + w4 * log_atx).sum()
    d_alpha = r / alpha * W.sum() - (w3 * (r + x) / (alpha + T) + w4 * (r + x) / (alpha + t_x)).sum()
    d_a = (W * (digamma(a + b) - digamma(a + b + ux))).sum() + w4.sum() / a
    d_b = (W * (digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux))).sum() - (
        w4 * inv_b[level_of]
    ).sum()
    total = W.sum()
    value = -ll / total
    if not np.isfinite(value):
        return 1e300, np.zeros(4)
    grad = np.array([d_r, d_alpha, d_a, d_b]) * np.array([r, alpha, a, b])
    return value, -grad / total


def _minimize(*args: Any, **kwargs: Any) -> Any:
    """scipy's L-BFGS-B with one BLAS thread: its tiny matrix products with OpenBLAS's two threads were
    5x slower on a busy 2-core machine (spin-waiting)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return minimize(*args, **kwargs)


def _converged(result: Any) -> bool:
    """L-BFGS-B stops with ABNORMAL on a flat ridge or at a bound even when the gradient (of the mean
    log-likelihood) is nil: that is an optimum too."""
    return bool(result.success or (np.isfinite(result.fun) and np.abs(result.jac).max() < 1e-5))


def _unique_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and each row's index among them (a lexsort: np.unique(axis=0) is
    ~20x slower on a million rows)."""
    stacked = [np.asarray(c, dtype=float) for c in columns]
    if len(stacked[0]) == 0:
        return stacked, np.zeros(0, dtype=np.int64)
    order = np.lexsort(stacked[::-1])
    ordered = [c[order] for c in stacked]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any([c[1:] != c[:-1] for c in ordered], axis=0)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return [c[starts] for c in ordered], inverse


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows and their counts: identical customers contribute identical likelihood terms."""
    unique, inverse = _unique_rows(*columns)
    return unique, np.bincount(inverse, minlength=len(unique[0])).astype(float)


def fit_bgnbd(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    unit_days: float = 1.0,
    max_iter: int = 1_000,
) -> BGNBDParams:
    """Maximum likelihood (L-BFGS-B on log-parameters, analytic gradient). Inputs in days; they are
    divided by `unit_days` (7 = weeks) before fitting, so alpha is in those units."""
    (x, t_x, T_), weights = _compress(
        frequency, np.asarray(recency, float) / unit_days, np.asarray(T, float) / unit_days
    )
    start = np.log([1.0, max(float(np.average(T_, weights=weights)), 1e-3), 1.0, 1.0])
    levels, level_of = np.unique(x, return_inverse=True)
    level_weight = np.bincount(level_of, weights=weights)
    result = _minimize(
        _bgnbd_objective,
        start,
        args=(x, t_x, T_, weights, levels, level_of, level_weight),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-12.0, 12.0)] * 4,
        options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14},
    )
    r, alpha, a, b = np.exp(result.x)
    total = float(weights.sum())
    return BGNBDParams(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(-result.fun * total),
        n_customers=int(total),
        converged=_converged(result),
        iterations=int(result.nit),
        unit_days=unit_days,
        at_bound=bool((np.abs(np.abs(result.x) - 12.0) < 0.5).any()),
    )


def p_alive(params: BGNBDParams, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still active at T | x, t_x, T) (FHL 2005 eq. 11); 1 for customers without repeat purchases."""
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float) / params.unit_days
    T_ = np.asarray(T, dtype=float) / params.unit_days
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T_) - np.log(alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.where(x > 0, log_ratio, 0.0))), 1.0)


def conditional_expected_purchases(
    params: BGNBDParams, horizon_days: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] (FHL 2005 eq. 10; a != 1)."""
    (if_alive,) = _purchases_if_alive(params, [horizon_days], frequency, T)
    return if_alive * p_alive(params, frequency, recency, T)


def _purchases_if_alive(
    params: BGNBDParams, horizons_days: list[float], frequency: np.ndarray, T: np.ndarray
) -> list[np.ndarray]:
    """Eq. 10 without its P(alive) factor for each horizon, evaluated once per distinct (x, T): 2F1 is
    the costly part and warehouse summaries, in whole days, repeat the same pairs many times."""
    (x, T_), inverse = _unique_rows(frequency, np.asarray(T, dtype=float) / params.unit_days)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    results = []
    for horizon in horizons_days:
        t = horizon / params.unit_days
        # Pfaff's transformation of eq. 10's ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z):
        # the power cancels, which keeps it finite when r and alpha are huge (near-equal purchase rates)
        tail = _hyp2f1(r + x, a - 1, a + b + x - 1, -t / (alpha + T_))
        results.append(((a + b + x - 1) / (a - 1) * (1 - tail))[inverse])
    return results


def unconditional_expected_purchases(params: BGNBDParams, days: np.ndarray | float) -> np.ndarray:
    """E[X(t)]: expected repeat purchases of a new customer in its first t days (FHL 2005 eq. 9)."""
    t = np.asarray(days, dtype=float) / params.unit_days
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    return (a + b - 1) / (a - 1) * (1 - _hyp2f1(r, a - 1, a + b - 1, -t / alpha))  # Pfaff, as above


def _hyp2f1(A: np.ndarray | float, B: float, C: np.ndarray | float, w: np.ndarray | float) -> np.ndarray:
    """scipy's 2F1, with Gauss's series where scipy gives up (it returns NaN for huge A even at tiny |w|,
    which is where near-equal purchase rates put r and alpha)."""
    A, C, w = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (A, C, w)))
    value = np.array(hyp2f1(A, B, C, w), dtype=float, ndmin=1).reshape(A.shape)
    bad = ~np.isfinite(value) & (np.abs(w) < 1)
    if bad.any():
        a_, c_, w_ = A[bad], C[bad], w[bad]
        term = np.ones_like(a_)
        total = np.ones_like(a_)
        for k in range(2_000):
            term = term * (a_ + k) * (B + k) / ((c_ + k) * (k + 1)) * w_
            total += term
            if np.abs(term).max() < 1e-15 * np.abs(total).min():
                break
        value[bad] = total
    return value


def p_no_purchase(
    params: BGNBDParams, window_days: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """P(no purchase in (T, T + window] | x, t_x, T). A BG/NBD customer can only drop out right after a
    purchase, so: dead, or alive with no Poisson event in the window, whose rate given alive is
    Gamma(r + x, alpha + T): 1 - P(alive) * (1 - ((alpha+T)/(alpha+T+w))^(r+x))."""
    x = np.asarray(frequency, dtype=float)
    T_ = np.asarray(T, dtype=float) / params.unit_days
    w = window_days / params.unit_days
    silent = ((params.alpha + T_) / (params.alpha + T_ + w)) ** (params.r + x)
    return 1.0 - p_alive(params, frequency, recency, T) * (1.0 - silent)


def median_days_to_next_purchase(params: BGNBDParams, frequency: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Median waiting time (days) to the next purchase of a customer who is still active: the w with
    ((alpha+T)/(alpha+T+w))^(r+x) = 1/2."""
    x = np.asarray(frequency, dtype=float)
    T_ = np.asarray(T, dtype=float) / params.unit_days
    waiting = (params.alpha + T_) * (2.0 ** (1.0 / (params.r + x)) - 1.0)
    return waiting * params.unit_days


# --- Gamma-Gamma --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    n_customers: int
    converged: bool
    iterations: int

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "p": self.p,
            "q": self.q,
            "gamma": self.gamma,
            "log_likelihood": self.log_likelihood,
            "n_customers": self.n_customers,
            "converged": self.converged,
            "iterations": self.iterations,
        }


def gamma_gamma_log_likelihood(
    p: float, q: float, gamma: float, x: np.ndarray, zbar: np.ndarray
) -> np.ndarray:
    """Per-customer log density of the mean repeat value zbar over x repeat transactions
    (Fader & Hardie 2013, eq. 4)."""
    x, zbar = np.asarray(x, dtype=float), np.asarray(zbar, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(zbar)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * zbar)
    )


def _gamma_gamma_objective(
    log_params: np.ndarray,
    x: np.ndarray,
    zbar: np.ndarray,
    w: np.ndarray,
    levels: np.ndarray,
    level_weight: np.ndarray,
    constants: tuple[float, float, float],
) -> tuple[float, np.ndarray]:
    """As the BG/NBD objective: special functions once per distinct x, one log per customer;
    `constants` = sums of w x log zbar, w log zbar and w x log x."""
    p, q, gamma = np.exp(log_params)
    sum_x_log_z, sum_log_z, sum_x_log_x = constants
    ux, W = levels, level_weight
    pu = p * ux
    spend = gamma + x * zbar
    log_spend = np.log(spend)
    total = W.sum()
    ll = (
        (W * (gammaln(pu + q) - gammaln(pu))).sum()
        + total * (q * np.log(gamma) - gammaln(q))
        + p * sum_x_log_z
        - sum_log_z
        + p * sum_x_log_x
        - (w * (p * x + q) * log_spend).sum()
    )
    common = digamma(pu + q)
    d_p = (W * ux * (common - digamma(pu))).sum() + sum_x_log_z + sum_x_log_x - (w * x * log_spend).sum()
    d_q = (W * common).sum() + total * (np.log(gamma) - digamma(q)) - (w * log_spend).sum()
    d_gamma = total * q / gamma - (w * (p * x + q) / spend).sum()
    value = -ll / total
    if not np.isfinite(value):
        return 1e300, np.zeros(3)
    grad = np.array([d_p, d_q, d_gamma]) * np.array([p, q, gamma])
    return value, -grad / total


def fit_gamma_gamma(frequency: np.ndarray, monetary: np.ndarray, max_iter: int = 1_000) -> GammaGammaParams:
    """Maximum likelihood on repeaters (frequency > 0, monetary > 0 only; others are ignored)."""
    x = np.asarray(frequency, dtype=float)
    zbar = np.asarray(monetary, dtype=float)
    keep = (x > 0) & np.isfinite(zbar) & (zbar > 0)
    (x, zbar), weights = _compress(x[keep], zbar[keep])
    start = np.log([1.0, 1.0, max(float(np.average(zbar, weights=weights)), 1e-3)])
    levels, level_of = np.unique(x, return_inverse=True)
    level_weight = np.bincount(level_of, weights=weights)
    log_z = np.log(zbar)
    constants = (
        float((weights * x * log_z).sum()),
        float((weights * log_z).sum()),
        float((weights * x * np.log(x)).sum()),
    )
    result = _minimize(
        _gamma_gamma_objective,
        start,
        args=(x, zbar, weights, levels, level_weight, constants),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-12.0, 15.0)] * 3,
        options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14},
    )
    p, q, gamma = np.exp(result.x)
    total = float(weights.sum())
    return GammaGammaParams(
        p=float(p),
        q=float(q),
        gamma=float(gamma),
        log_likelihood=float(-result.fun * total),
        n_customers=int(total),
        converged=_converged(result),
        iterations=int(result.nit),
    )


def expected_order_value(params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """E[mean order value | x, zbar] = p (gamma + x zbar) / (p x + q - 1): a weighted average of the
    population mean p gamma / (q - 1) and the customer's own mean; the population mean when x = 0."""
    x = np.asarray(frequency, dtype=float)
    zbar = np.nan_to_num(np.asarray(monetary, dtype=float), nan=0.0)
    x = np.where(zbar > 0, x, 0.0)
    return params.p * (params.gamma + x * zbar) / (params.p * x + params.q - 1)


def customer_lifetime_value(
    bgnbd: BGNBDParams,
    order_value: np.ndarray,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    horizon_days: float,
    annual_discount_rate: float = 0.0,
    step_days: float = 30.0,
) -> np.ndarray:
    """Expected purchases over the horizon x expected order value; with a discount rate the horizon is
    cut into steps and each step's expected purchases are discounted to the step's end,
    (1 + rate)^(-t / 365)."""
    alive = p_alive(bgnbd, frequency, recency, T)
    if annual_discount_rate == 0.0:
        return _purchases_if_alive(bgnbd, [horizon_days], frequency, T)[0] * alive * order_value
    edges = np.append(np.arange(step_days, horizon_days, step_days), horizon_days)
    value = np.zeros(np.shape(frequency), dtype=float)
    before = np.zeros_like(value)
    for edge, cumulative in zip(edges, _purchases_if_alive(bgnbd, list(edges), frequency, T), strict=True):
        value += (cumulative - before) / (1.0 + annual_discount_rate) ** (edge / 365.0)
        before = cumulative
    return value * alive * order_value
