"""The CDNOW reproduction, printed and recorded in ml.model_runs (model `clv_cdnow_reproduction`).

.venv/bin/python bench/cdnow.py [--sample PATH] [--no-record]

The sample is read from the installed `lifetimes` wheel (dev extra) unless --sample names the file; the
run is written to the configured warehouse (WAREHOUSE_URL / the embedded one) unless --no-record.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's ml/, not bench/ml.py

from ml.clv_reproduction import PUBLISHED, cdnow_run, cdnow_sample_path, read_cdnow  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=Path, help="CDNOW_sample.txt (default: the lifetimes wheel's)")
    parser.add_argument("--no-record", action="store_true", help="print only; write nothing")
    args = parser.parse_args()
    path = args.sample or cdnow_sample_path()
    if path is None or not path.exists():
        print("no CDNOW sample: install the dev extra (lifetimes) or pass --sample PATH", file=sys.stderr)
        return 2
    run = cdnow_run(read_cdnow(path))
    fit, spend, holdout = (run.metrics[name] for name in ("bgnbd", "gamma_gamma", "holdout"))
    print(
        f"BG/NBD r={fit['r']:.4f} alpha={fit['alpha']:.3f} a={fit['a']:.4f} b={fit['b']:.3f} "
        f"LL={fit['log_likelihood']:.2f} (published {PUBLISHED['bgnbd']})"
    )
    print(
        f"Gamma-Gamma p={spend['p']:.3f} q={spend['q']:.3f} gamma={spend['gamma']:.2f} "
        f"on {spend['n_customers']} repeaters (published {PUBLISHED['gamma_gamma']})"
    )
    print(
        f"holdout {holdout['holdout_days']} days: forecast {holdout['forecast_purchase_days']:.0f} vs "
        f"{holdout['actual_purchase_days']:.0f} actual repeat purchase days "
        f"({holdout['forecast_error']:+.1%}); "
        f"MAE {holdout['mae_model']:.3f} vs {holdout['mae_naive_rate']:.3f} for the past rate"
    )
    if args.no_record:
        return 0
    import psycopg

    from dagster_project.ml.io import record_model_run
    from dagster_project.warehouse import connection

    with psycopg.connect(connection.libpq_url(connection.warehouse_url())) as conn:
        record_model_run(conn, run)
    print(f"recorded in ml.model_runs: model {run.model}, version {run.version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
