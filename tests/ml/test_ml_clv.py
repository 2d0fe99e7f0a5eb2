"""BG/NBD + Gamma-Gamma: the published CDNOW figures, its holdout, and hand-computed small cases."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pandas as pd
import psycopg
import pytest
from scipy import integrate

from dagster_project.ml.io import record_model_run
from dagster_project.warehouse import connection
from ml import clv
from ml.clv_reproduction import (
    CALIBRATION_END,
    HOLDOUT_DAYS,
    HOLDOUT_END,
    cdnow_run,
    cdnow_sample_path,
    read_cdnow,
)


def cdnow_transactions() -> pd.DataFrame:
    path = cdnow_sample_path()
    if path is None:
        pytest.skip("lifetimes (dev extra) is not installed: it carries the CDNOW sample")
    return read_cdnow(path)


@pytest.fixture(scope="module")
def cdnow():
    transactions = cdnow_transactions()
    summary = clv.repeat_purchase_summary(
        transactions, CALIBRATION_END, "customer_id", "ordered_at", "amount"
    )
    bgnbd = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"], unit_days=7)
    return transactions, summary, bgnbd


def test_cdnow_summary_has_the_papers_shape(cdnow):
    _, summary, _ = cdnow
    assert len(summary) == 2357
    assert (summary["frequency"] > 0).sum() == 946  # the Gamma-Gamma note's repeaters
    # Fader & Hardie's own summary (x, t_x and T in weeks to 2 decimals, zbar), shipped alongside
    published = pd.read_csv(
        importlib.metadata.distribution("lifetimes").locate_file(
            "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
        )
    )
    assert (summary["frequency"].to_numpy() == published["x"].to_numpy()).all()
    assert np.abs(summary["recency"] / 7 - published["t_x"]).max() < 0.005
    assert np.abs(summary["T"] / 7 - published["T"]).max() < 0.005
    assert np.abs(summary["monetary"].fillna(0) - published["zbar"]).max() < 0.006


def test_cdnow_bgnbd_reproduces_fader_hardie_lee(cdnow):
    _, _, fit = cdnow
    assert fit.converged
    for got, published in ((fit.r, 0.243), (fit.alpha, 4.414), (fit.a, 0.793), (fit.b, 2.426)):
        assert got == pytest.approx(published, rel=0.01)
    assert fit.log_likelihood == pytest.approx(-9582.4, rel=0.01)


def test_cdnow_gamma_gamma_reproduces_fader_hardie(cdnow):
    _, summary, _ = cdnow
    fit = clv.fit_gamma_gamma(summary["frequency"], summary["monetary"])
    assert fit.n_customers == 946
    for got, published in ((fit.p, 6.25), (fit.q, 3.74), (fit.gamma, 15.44)):
        assert got == pytest.approx(published, rel=0.02)


def test_cdnow_holdout_forecast_and_per_customer_error(cdnow):
    transactions, summary, fit = cdnow
    holdout = clv.purchase_days_between(transactions, CALIBRATION_END, HOLDOUT_END, "customer_id")
    actual = summary["customer_id"].map(holdout).fillna(0).to_numpy()
    assert actual.sum() == 1882
    expected = clv.conditional_expected_purchases(
        fit, HOLDOUT_DAYS, summary["frequency"], summary["recency"], summary["T"]
    )
    assert abs(expected.sum() - 1882) / 1882 < 0.15
    naive = summary["frequency"] / summary["T"] * HOLDOUT_DAYS
    model_mae = np.abs(expected - actual).mean()
    naive_mae = np.abs(naive - actual).mean()
    assert model_mae == pytest.approx(0.79, abs=0.01)
    assert model_mae < naive_mae


def test_cdnow_reproduction_is_recorded_as_a_model_run(cdnow, warehouse_url: str):
    """bench/cdnow.py's run: the fit, Gamma-Gamma and holdout figures land in ml.model_runs."""
    transactions, _, _ = cdnow
    with psycopg.connect(connection.libpq_url(warehouse_url)) as conn:
        record_model_run(conn, cdnow_run(transactions))
        record_model_run(conn, cdnow_run(transactions))  # same data, same version: one row
        rows = conn.execute(
            "select version, metrics from ml.model_runs where model = 'clv_cdnow_reproduction'"
        ).fetchall()
    assert len(rows) == 1
    metrics = rows[0][1]
    for name, published in (("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)):
        assert metrics["bgnbd"][name] == pytest.approx(published, rel=0.01)
    assert metrics["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, rel=0.01)
    for name, published in (("p", 6.25), ("q", 3.74), ("gamma", 15.44)):
        assert metrics["gamma_gamma"][name] == pytest.approx(published, rel=0.02)
    holdout = metrics["holdout"]
    assert holdout["actual_purchase_days"] == 1882
    assert holdout["forecast_purchase_days"] == pytest.approx(1653, abs=5)
    assert abs(holdout["forecast_error"]) < 0.15
    assert holdout["mae_model"] == pytest.approx(0.79, abs=0.01)
    assert holdout["mae_naive_rate"] == pytest.approx(1.02, abs=0.01)
    assert holdout["mae_model"] < holdout["mae_naive_rate"]


def test_summary_by_hand():
    orders = pd.DataFrame(
        {
            "customer_key": ["a", "a", "a", "a", "b", "c", "c"],
            "ordered_at": [
                "2024-01-01T09:00Z",
                "2024-01-01T18:00Z",  # same day: one purchase day of 30
                "2024-01-11T10:00Z",
                "2024-01-31T23:00Z",
                "2024-01-20T10:00Z",
                "2024-01-05T10:00Z",
                "2024-02-05T10:00Z",  # after the end: ignored
            ],
            "order_total": [10.0, 20.0, 40.0, 60.0, 15.0, 25.0, 99.0],
        }
    )
    summary = clv.repeat_purchase_summary(orders, pd.Timestamp("2024-01-31T12:00Z"))
    assert summary["customer_key"].tolist() == ["a", "b", "c"]
    assert summary["frequency"].tolist() == [2, 0, 0]
    assert summary["recency"].tolist() == [30.0, 0.0, 0.0]
    assert summary["T"].tolist() == [30.0, 11.0, 26.0]
    assert summary["monetary"].iloc[0] == 50.0  # (40 + 60) / 2, the first day excluded
    assert summary["monetary"].iloc[1:].isna().all()


def test_summary_names_a_bad_record():
    orders = pd.DataFrame(
        {"customer_key": ["a", "b"], "ordered_at": ["2024-01-01", "2024-01-02"], "order_total": [1, "x"]}
    )
    with pytest.raises(clv.CLVDataError, match="'x' of customer 'b'"):
        clv.repeat_purchase_summary(orders, pd.Timestamp("2024-02-01"))


PARAMS = clv.BGNBDParams(
    r=1.2, alpha=3.0, a=1.5, b=4.0, log_likelihood=0.0, n_customers=1, converged=True, iterations=0
)


def _likelihood_by_formula(r, alpha, a, b, x, t_x, T):
    """FHL 2005 eq. 3 with Gamma and Beta functions written out."""
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)  # noqa: E731
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    alive = beta(a, b + x) / beta(a, b) * common / (alpha + T) ** (r + x)
    dead = beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x) if x > 0 else 0.0
    return alive + dead


def test_bgnbd_likelihood_of_single_customers_by_direct_formula():
    for x, t_x, T in ((0, 0.0, 5.0), (1, 2.0, 6.0), (4, 7.5, 10.0)):
        got = clv.bgnbd_log_likelihood(0.5, 3.0, 1.5, 4.0, np.array([x]), np.array([t_x]), np.array([T]))[0]
        assert got == pytest.approx(
            math.log(_likelihood_by_formula(0.5, 3.0, 1.5, 4.0, x, t_x, T)), rel=1e-10
        )


def _posterior_integral(function, x, t_x, T):
    """Integrate function(lam, p, alive) against the BG/NBD posterior (PARAMS) numerically."""
    r, alpha, a, b = PARAMS.r, PARAMS.alpha, PARAMS.a, PARAMS.b

    def prior(lam, p):
        return (
            alpha**r
            * lam ** (r - 1)
            * math.exp(-alpha * lam)
            / math.gamma(r)
            * p ** (a - 1)
            * (1 - p) ** (b - 1)
            * math.gamma(a + b)
            / (math.gamma(a) * math.gamma(b))
        )

    def weight(lam, p, alive):
        if alive:
            return prior(lam, p) * (1 - p) ** x * lam**x * math.exp(-lam * T)
        return prior(lam, p) * p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x) if x > 0 else 0.0

    def integrate_both(g):
        return sum(
            integrate.dblquad(lambda lam, p, s=alive: weight(lam, p, s) * g(lam, p, s), 0, 1, 0, 60)[0]
            for alive in ((True, False) if x > 0 else (True,))
        )

    return integrate_both(function) / integrate_both(lambda lam, p, s: 1.0)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")  # quadpack on the lam ~ 0 edge
@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 4.0), (3, 5.0, 9.0)])
def test_bgnbd_predictions_match_numerical_integration_over_the_posterior(x, t_x, T):
    freq, rec, age = np.array([x]), np.array([t_x]), np.array([T])
    window = 2.5
    alive = _posterior_integral(lambda lam, p, s: float(s), x, t_x, T)
    assert clv.p_alive(PARAMS, freq, rec, age)[0] == pytest.approx(alive, rel=1e-5)
    silent = _posterior_integral(lambda lam, p, s: math.exp(-lam * window) if s else 1.0, x, t_x, T)
    assert clv.p_no_purchase(PARAMS, window, freq, rec, age)[0] == pytest.approx(silent, rel=1e-5)
    # an active customer with rate lam and drop-out p makes (1 - exp(-lam p t)) / p purchases in t
    purchases = _posterior_integral(
        lambda lam, p, s: (1 - math.exp(-lam * p * window)) / p if s else 0.0, x, t_x, T
    )
    got = clv.conditional_expected_purchases(PARAMS, window, freq, rec, age)[0]
    assert got == pytest.approx(purchases, rel=1e-5)


def test_unconditional_expectation_is_the_conditional_one_of_a_brand_new_customer():
    got = clv.unconditional_expected_purchases(PARAMS, 7.0)
    new = clv.conditional_expected_purchases(PARAMS, 7.0, np.array([0]), np.array([0.0]), np.array([0.0]))[0]
    assert got == pytest.approx(new, rel=1e-10)


def test_units_only_rescale_time():
    weekly = clv.BGNBDParams(**{**PARAMS.as_dict(), "unit_days": 7.0})
    freq, rec, age = np.array([2]), np.array([3.0]), np.array([8.0])
    assert clv.p_alive(weekly, freq, rec * 7, age * 7) == pytest.approx(clv.p_alive(PARAMS, freq, rec, age))
    assert clv.median_days_to_next_purchase(weekly, freq, age * 7) == pytest.approx(
        7 * clv.median_days_to_next_purchase(PARAMS, freq, age)
    )


def test_median_waiting_time_halves_the_silence_probability_of_an_active_customer():
    freq, age = np.array([2]), np.array([8.0])
    wait = clv.median_days_to_next_purchase(PARAMS, freq, age)[0]
    silent = ((PARAMS.alpha + 8.0) / (PARAMS.alpha + 8.0 + wait)) ** (PARAMS.r + 2)
    assert silent == pytest.approx(0.5)


def test_gamma_gamma_expected_value_is_the_posterior_mean():
    params = clv.GammaGammaParams(
        p=6.0, q=4.0, gamma=15.0, log_likelihood=0.0, n_customers=1, converged=True, iterations=0
    )
    x, zbar = 3, 40.0
    # the mean spend is p / nu with nu | data ~ Gamma(p x + q, gamma + x zbar)
    shape, rate = params.p * x + params.q, params.gamma + x * zbar
    density = lambda nu: rate**shape * nu ** (shape - 1) * math.exp(-rate * nu) / math.gamma(shape)  # noqa: E731
    mean = integrate.quad(lambda nu: params.p / nu * density(nu), 0, np.inf)[0]
    got = clv.expected_order_value(params, np.array([x, 0]), np.array([zbar, np.nan]))
    assert got[0] == pytest.approx(mean, rel=1e-6)
    assert got[1] == pytest.approx(params.p * params.gamma / (params.q - 1))


def test_discounting_lowers_value_and_zero_rate_is_undiscounted():
    freq, rec, age = np.array([3, 0]), np.array([40.0, 0.0]), np.array([60.0, 30.0])
    value = np.array([50.0, 50.0])
    plain = clv.customer_lifetime_value(PARAMS, value, freq, rec, age, 365)
    stepped = clv.customer_lifetime_value(PARAMS, value, freq, rec, age, 365, 1e-12)
    discounted = clv.customer_lifetime_value(PARAMS, value, freq, rec, age, 365, 0.10)
    assert stepped == pytest.approx(plain, rel=1e-9)
    assert (discounted < plain).all() and (discounted > plain / 1.10).all()
