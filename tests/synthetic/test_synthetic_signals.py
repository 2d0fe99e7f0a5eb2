"""The latent archetypes leave a trace that clustering can find, better than an RFM-quintile baseline."""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import orjson
import psycopg
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler
from synthetic_helpers import make_world, new_database


def _features(out, shop_url) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per person: RFM from the shop, email engagement from the ESP files, web activity (+ the labels)."""
    with (out / "ground_truth" / "people.csv").open() as handle:
        people = [p for p in csv.DictReader(handle) if p["is_test_account"] == "false"]
    with psycopg.connect(shop_url) as conn:
        orders = conn.execute(
            "select customer_id::text, count(*), sum(order_total)::float, max(ordered_at) from shop.orders "
            "where status = 'completed' group by 1"
        ).fetchall()
        as_of = conn.execute("select max(ordered_at) from shop.orders").fetchone()[0]
    rfm = {cid: (count, total, (as_of - last) / dt.timedelta(days=1)) for cid, count, total, last in orders}
    sends: dict[str, int] = {}
    clicks: dict[str, int] = {}
    for path in (out / "esp" / "events").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            event = orjson.loads(line)
            if event["event_type"] == "delivered":
                sends[event["profile_id"]] = sends.get(event["profile_id"], 0) + 1
            elif event["event_type"] == "click":
                clicks[event["profile_id"]] = clicks.get(event["profile_id"], 0) + 1
    web: dict[str, int] = {}
    for path in (out / "web" / "events").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            user = orjson.loads(line)["userId"]
            if user:
                web[user] = web.get(user, 0) + 1
    labels, rows, baseline = [], [], []
    for person in people:
        count, total, recency = rfm.get(person["shop_customer_id"], (0, 0.0, 500.0))
        delivered = sends.get(person["esp_profile_id"], 0)
        click_rate = clicks.get(person["esp_profile_id"], 0) / max(delivered, 1)
        rows.append(
            [
                np.log1p(recency),
                np.log1p(count),
                np.log1p(total),
                click_rate,
                np.log1p(web.get(person["web_user_id"], 0)),
                float(bool(person["shop_customer_id"])),
            ]
        )
        baseline.append((recency, count, total))
        labels.append(person["archetype"])
    return labels, np.array(rows), np.array(baseline)


def _quintiles(values: np.ndarray) -> np.ndarray:
    ranks = values.argsort(kind="stable").argsort(kind="stable")
    return ranks * 5 // len(values)


def test_kmeans_recovers_archetypes_better_than_rfm_quintiles(pg_server, tmp_path):
    shop_url = new_database(pg_server)
    make_world(tmp_path, shop_url, customers=800, days=14)
    labels, features, rfm = _features(tmp_path, shop_url)
    clusters = KMeans(6, n_init=10, random_state=0).fit_predict(StandardScaler().fit_transform(features))
    rfm_cells = _quintiles(rfm[:, 0]) * 25 + _quintiles(rfm[:, 1]) * 5 + _quintiles(rfm[:, 2])
    kmeans_ari = adjusted_rand_score(labels, clusters)
    baseline_ari = adjusted_rand_score(labels, rfm_cells)
    assert kmeans_ari > 0.3
    assert kmeans_ari > baseline_ari + 0.1
