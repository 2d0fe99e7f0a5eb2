"""Diff-based, consent-respecting profile sync from the marts to an ESP (plain functions, no Dagster).

State: `activation.esp_sync_state` holds, per destination and customer, the hash of the fields last
confirmed by the ESP. It is written only after the ESP confirmed a batch, so a crash between batches
followed by a rerun converges on the intended state (ESP upserts are keyed by email/external id: no
duplicates). Rejections and failed batches are logged per record in `activation.esp_sync_outcomes` and,
having no confirmed state, are retried on the next run. One row per run in `activation.esp_sync_log`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import psycopg.types.json

from dagster_project.activation import sync_scope
from dagster_project.activation.client import (
    EspClient,
    EspError,
    ProfileRecord,
    RecordOutcome,
    chunked,
    failed_outcomes,
)
from dagster_project.privacy import field_crypto, normalize
from dagster_project.privacy.masking import mask_value
from dagster_project.warehouse.connection import table_exists

NON_CONTACTABLE_STATUSES = ("unsubscribed", "bounced", "complained")

# Model scores that move a little every day because the clock moves (a customer's age enters the value
# models, which are refitted daily): a profile is re-sent for them only when one moved past its tolerance
# since the value last pushed (absolute for probabilities, relative for money, days for dates). Without
# this a new day re-sent about 3 in 4 profiles (measured: 1,492 of 1,924, 1,351 of them for churn risk).
DRIFT_TOLERANCES: dict[str, tuple[str, float]] = {
    "sendwise_p_alive": ("absolute", 0.05),
    "sendwise_churn_risk": ("absolute", 0.05),
    "sendwise_purchase_propensity_30d": ("absolute", 0.05),
    "sendwise_predicted_clv": ("relative", 0.10),
    "sendwise_expected_next_order_date": ("days", 7),
}

DDL = """
create schema if not exists activation;
create table if not exists activation.esp_sync_state (
    destination text not null,
    customer_key text not null,
    email text not null,
    fields_hash text not null,
    fields jsonb not null,
    run_id text not null,
    synced_at timestamptz not null,
    primary key (destination, customer_key)
);
create table if not exists activation.esp_sync_outcomes (
    run_id text not null,
    destination text not null,
    customer_key text not null,
    email text,
    action text not null,
    status text not null,
    reason text,
    recorded_at timestamptz not null default now()
);
create index if not exists esp_sync_outcomes_run on activation.esp_sync_outcomes (run_id);
-- email holds the email's token (keyed hash), email_encrypted its Fernet ciphertext (privacy/field_crypto)
alter table activation.esp_sync_state add column if not exists email_encrypted text;
create table if not exists activation.esp_sync_log (
    run_id text primary key,
    destination text not null,
    list_id text,
    dry_run boolean not null,
    status text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    duration_seconds double precision,
    planned integer, added integer, updated integer, unchanged integer, removed integer,
    failed integer, rejected integer, requests integer,
    error text
);
-- what the sync's diff read (sync_scope.py: the next sync diffs the customers built after it)
alter table activation.esp_sync_log add column if not exists fields_version text;
alter table activation.esp_sync_log add column if not exists inputs_until jsonb;
alter table activation.esp_sync_log add column if not exists candidates integer;
"""


@dataclass
class SyncPlan:
    to_add: list[ProfileRecord] = field(default_factory=list)
    to_update: list[ProfileRecord] = field(default_factory=list)
    to_remove: list[ProfileRecord] = field(default_factory=list)
    to_forget: list[str] = field(default_factory=list)
    """Synced customer keys whose email is now pushed under another key: drop the state, no ESP call."""
    unchanged: int = 0
    not_contactable: int = 0
    hashes: dict[str, str] = field(default_factory=dict)
    pushed_emails: set[str] = field(default_factory=set)
    """Tokens of the emails Sendwise pushes (see privacy/field_crypto.py)."""
    stored_emails: dict[str, tuple[str, str]] = field(default_factory=dict)
    """customer_key -> (email token, ciphertext) of the profiles to send, for the sync state."""
    fields_version: str = ""
    inputs_until: dict[str, str] | None = None
    """The newest build stamps read (the next sync diffs the customers built after them)."""
    candidates: int | None = None
    """Customers whose inputs changed since the last sync (None: every customer was diffed)."""

    @property
    def planned(self) -> int:
        return len(self.to_add) + len(self.to_update) + len(self.to_remove)


@dataclass
class SyncResult:
    run_id: str
    destination: str
    dry_run: bool
    plan: SyncPlan
    added: int = 0
    updated: int = 0
    removed: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    status: str = "running"
    problems: list[RecordOutcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "status": self.status,
            "planned": self.plan.planned,
            "to_add": len(self.plan.to_add),
            "to_update": len(self.plan.to_update),
            "to_remove": len(self.plan.to_remove),
            "unchanged": self.plan.unchanged,
            "not_contactable": self.plan.not_contactable,
            "candidates": self.plan.candidates,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "rejected": self.rejected,
            "failed": self.failed,
            "requests": self.requests,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def ensure_tables(conn: psycopg.Connection) -> None:
    conn.execute(DDL)
    _protect_legacy_state(conn)
    conn.commit()


def _protect_legacy_state(conn: psycopg.Connection) -> None:
    """State rows written before field encryption hold a plaintext email: token and encrypt them once."""
    rows = conn.execute(
        "select distinct email from activation.esp_sync_state where email_encrypted is null"
    ).fetchall()
    if not rows:
        return
    protector = field_crypto.protector(conn)
    for (email,) in rows:
        normalised = normalize.normalize_email(email)
        conn.execute(
            "update activation.esp_sync_state set email = %s, email_encrypted = %s "
            "where email = %s and email_encrypted is null",
            (protector.token(normalised), protector.cipher.encrypt(normalised), email),
        )


def _present(conn: psycopg.Connection, marts_schema: str) -> tuple[dict[str, str], set[str]]:
    optional = {
        f"{marts_schema}.fct_customer_features": "f",
        "ml.customer_segments": "s",
        "ml.send_time_predictions": "t",
        "ml.customer_value": "v",
    }
    return optional, {alias for table, alias in optional.items() if table_exists(conn, table)}


_NEXT_SEND_AT = """to_char(t.next_send_at_utc at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""


def daily_fields(conn: psycopg.Connection, marts_schema: str = "marts") -> dict[str, str]:
    """The pushed properties from ML tables rewritten every run (no build stamp), as SQL over `s`/`t`."""
    _, present = _present(conn, marts_schema)
    fields = {}
    if "s" in present:
        fields |= {"sendwise_segment": "s.segment_name", "sendwise_segment_id": "s.segment_id"}
    if "t" in present:
        fields |= {
            "sendwise_best_send_hour": "t.best_hour_of_week",
            "sendwise_next_send_at": _NEXT_SEND_AT,
            "sendwise_send_time_source": "t.source_level",
            "sendwise_timezone": "t.timezone",
        }
    return fields


def desired_profiles_sql(conn: psycopg.Connection, marts_schema: str = "marts", scoped: bool = False) -> str:
    """One row per customer with an email: consent, and (for the contactable, one customer per email) the
    fields Sendwise pushes as JSON with their hash, compared with the last confirmed hash in SQL.

    The diff happens in Postgres so that an unchanged customer costs a tiny row, not a Python object.
    ML tables are joined only when they exist (the sync still runs before the first ML run). `scoped`:
    only the customers sharing an email with the candidates (sync_scope.py)."""
    optional, present = _present(conn, marts_schema)
    joins = [
        f"left join {table} {alias} on {alias}.customer_key = c.customer_key"
        for table, alias in optional.items()
        if alias in present
    ]

    def column(alias: str, expression: str) -> str:
        return expression if alias in present else "null"

    statuses = ", ".join(f"'{s}'" for s in NON_CONTACTABLE_STATUSES)
    lifetime_value = "coalesce(f.lifetime_value, c.lifetime_value)" if "f" in present else "c.lifetime_value"
    behavioural = column("f", f"to_jsonb({behavioural_segments_sql(affinity='v' in present)})")
    next_send_at = column("t", _NEXT_SEND_AT)
    value_properties = _value_properties_sql() if "v" in present else "'{}'::jsonb"
    drifting = "array[" + ", ".join(f"'{name}'" for name in DRIFT_TOLERANCES) + "]"
    drifted = _drifted_sql("h.properties", "state.fields")
    return f"""
with customers as (
    select
        c.customer_key,
        c.email,  -- the email's token: one ESP profile per token is one per normalised email
        c.email_encrypted,
        c.first_name,
        c.last_name,
        (coalesce(c.is_contactable, false)
         and coalesce(c.subscription_status, '') not in ({statuses})
         and coalesce(c.is_email_valid, false)) as contactable,
        jsonb_build_object(
            'sendwise_segment', {column("s", "s.segment_name")},
            'sendwise_segment_id', {column("s", "s.segment_id")},
            'sendwise_best_send_hour', {column("t", "t.best_hour_of_week")},
            'sendwise_next_send_at', {next_send_at},
            'sendwise_send_time_source', {column("t", "t.source_level")},
            'sendwise_timezone', {column("t", "t.timezone")},
            'sendwise_engagement_score', {column("f", "round(f.engagement_score::numeric, 3)")},
            'sendwise_lifetime_value', round(({lifetime_value})::numeric, 2),
            'sendwise_behavioural_segments', coalesce({behavioural}, '[]'::jsonb)
        ) || {value_properties} as properties
    from {marts_schema}.dim_customers c
    {chr(10).join(joins)}
    where c.email is not null and trim(c.email) <> ''{_candidate_emails(marts_schema) if scoped else ""}
),

pushed as (
    -- one ESP profile per email: the first customer key wins
    select *, row_number() over (partition by email order by customer_key) = 1 as first_for_email
    from customers
),

hashed as (
    -- the hash leaves out the model scores that drift a little every day (compared below with a
    -- tolerance against the values last pushed, kept in the state)
    select
        pushed.*,
        case when contactable and first_for_email then md5(jsonb_build_object(
            'email', email, 'first_name', first_name, 'last_name', last_name,
            'properties', properties - {drifting}::text[], 'list_id', %(list_id)s::text
        )::text) end as fields_hash
    from pushed
),

final as (
    select
        h.customer_key,
        h.email,
        h.email_encrypted,
        h.contactable and h.first_for_email as to_push,
        h.contactable,
        state.fields_hash as previous_hash,
        h.fields_hash,
        h.fields_hash is not null
            and (%(full_resync)s or h.fields_hash is distinct from state.fields_hash
                 or {drifted}) as changed,
        h.first_name,
        h.last_name,
        h.properties
    from hashed h
    left join activation.esp_sync_state state
        on state.destination = %(destination)s and state.customer_key = h.customer_key
)

select
    customer_key, email, email_encrypted, to_push, contactable, previous_hash, fields_hash, changed,
    case when changed then first_name end as first_name,
    case when changed then last_name end as last_name,
    case when changed then properties end as properties
from final
"""


def _candidate_emails(marts_schema: str) -> str:
    return (
        f" and c.email in (select k.email from {marts_schema}.dim_customers k "
        f"where k.customer_key in (select customer_key from {sync_scope.CANDIDATES}))"
    )


def behavioural_segments_sql(affinity: bool, features: str = "f", values: str = "v") -> str:
    """The behavioural segments as a text[] SQL expression over fct_customer_features (`features`).

    With `affinity` (ml.customer_value joined as `values`), the purchased_<category> segments are the
    customer's top categories by shrunk lift (ml/affinity.py), best first, instead of the mart's
    purchased_<category> for every category ever bought: a single order in a category makes no segment."""
    listed = f"replace(coalesce({features}.behavioural_segments, ''), ' ', '')"
    segments = f"array_remove(string_to_array({listed}, ','), '')"
    if not affinity:
        return segments
    slug = "trim(both '_' from regexp_replace(lower(trim(c)), '[^a-z0-9]+', '_', 'g'))"  # dbt's segment_slug
    return (
        f"(array(select s from unnest({segments}) s where s not like 'purchased\\_%%') || "
        f"array(select 'purchased_' || {slug} from unnest(string_to_array({values}.top_categories, ',')) "
        "with ordinality as t(c, n) order by n))"
    )


def _drifted_sql(new: str, pushed: str) -> str:
    """SQL true when a drifting property moved past its tolerance since it was last pushed (or appeared
    or vanished); `pushed` is the state's jsonb of the fields the ESP confirmed."""
    tests = []
    for name, (kind, tolerance) in DRIFT_TOLERANCES.items():
        now, then = f"({new} ->> '{name}')", f"({pushed} ->> '{name}')"
        if kind == "days":
            moved = f"abs({now}::date - {then}::date) > {int(tolerance)}"
        elif kind == "relative":
            moved = f"abs({now}::numeric - {then}::numeric) > {tolerance} * greatest(abs({then}::numeric), 1)"
        else:
            moved = f"abs({now}::numeric - {then}::numeric) > {tolerance}"
        tests.append(f"coalesce({moved}, ({now} is null) <> ({then} is null))")
    return " or ".join(tests) or "false"


def _value_properties_sql() -> str:
    """ml.customer_value as profile properties (nulls are dropped: no prediction, no property)."""
    rounded = {
        "sendwise_predicted_clv": "round(v.predicted_clv::numeric, 2)",
        "sendwise_historic_clv": "round(v.historic_clv::numeric, 2)",
        "sendwise_p_alive": "round(v.p_alive::numeric, 3)",
        "sendwise_churn_risk": "round(v.churn_risk::numeric, 3)",
        "sendwise_churn_risk_band": "v.churn_risk_band",
        "sendwise_expected_next_order_date": (
            "to_char(v.expected_next_order_at at time zone 'UTC', 'YYYY-MM-DD')"
        ),
        "sendwise_avg_days_between_orders": "round(v.avg_days_between_orders::numeric, 1)",
        "sendwise_purchase_propensity_30d": "round(v.purchase_propensity_30d::numeric, 3)",
        "sendwise_top_categories": "to_jsonb(string_to_array(v.top_categories, ','))",
    }
    pairs = ", ".join(f"'{name}', {expression}" for name, expression in rounded.items())
    return f"jsonb_strip_nulls(jsonb_build_object({pairs}))"


def load_state(conn: psycopg.Connection, destination: str) -> dict[str, tuple[str, str]]:
    """customer_key -> (email token, email ciphertext), as last confirmed by the ESP."""
    rows = conn.execute(
        "select customer_key, email, email_encrypted from activation.esp_sync_state where destination = %s",
        (destination,),
    )
    return {key: (token, ciphertext) for key, token, ciphertext in rows}


def plan_sync(
    conn: psycopg.Connection,
    destination: str,
    list_id: str,
    marts_schema: str = "marts",
    full_resync: bool = False,
) -> SyncPlan:
    """What to add, update and remove so that the ESP list holds exactly the contactable customers.
    `full_resync` pushes every contactable customer again (e.g. after the ESP side lost data)."""
    plan = SyncPlan()
    pushed_emails = plan.pushed_emails
    psycopg.types.json.set_json_loads(orjson.loads, conn)  # 5x faster than json.loads on this path
    conn.execute("set local work_mem = '128MB'")  # the per-email window sorts in memory, not on disk
    plan.fields_version = sync_scope.fields_version(desired_profiles_sql(conn, marts_schema))
    plan.inputs_until = sync_scope.inputs_until(conn, marts_schema)
    since = None
    if not full_resync and plan.inputs_until is not None:
        since = sync_scope.previous_inputs(conn, destination, list_id, plan.fields_version, plan.inputs_until)
    if since is not None:
        plan.candidates = sync_scope.create_candidates(
            conn, destination, since, marts_schema, daily_fields(conn, marts_schema)
        )
    rows = conn.execute(
        desired_profiles_sql(conn, marts_schema, scoped=since is not None),
        {"list_id": list_id, "destination": destination, "full_resync": full_resync},
    )
    cipher = field_crypto.load_cipher()  # emails are decrypted only for the profiles sent
    seen: set[str] = set()
    for (
        key,
        token,
        ciphertext,
        to_push,
        contactable,
        previous_hash,
        digest,
        changed,
        first,
        last,
        properties,
    ) in rows:
        seen.add(key)
        if not contactable:
            plan.not_contactable += 1
            continue
        if not to_push:
            continue
        pushed_emails.add(token)
        plan.hashes[key] = digest
        if not changed:
            plan.unchanged += 1
            continue
        plan.stored_emails[key] = (token, ciphertext)
        record = ProfileRecord(key, cipher.decrypt(ciphertext), first, last, properties)
        (plan.to_update if previous_hash else plan.to_add).append(record)
    plan.to_add.sort(key=lambda r: r.customer_key)  # stable batches: reruns resend the same groups
    plan.to_update.sort(key=lambda r: r.customer_key)
    state = load_state(conn, destination)
    if since is not None:  # synced customers not diffed keep what the ESP holds
        candidates = sync_scope.candidate_keys(conn)
        kept = {key for key in state if key not in seen and key not in candidates}
        plan.unchanged += len(kept)
        pushed_emails.update(state[key][0] for key in kept)
        state = {key: value for key, value in state.items() if key not in kept}
    for key, (token, ciphertext) in state.items():
        if key in plan.hashes:
            continue
        if token in pushed_emails:
            plan.to_forget.append(key)
        else:
            plan.to_remove.append(ProfileRecord(key, cipher.decrypt(ciphertext)))
    return plan


def _write_confirmed(
    conn: psycopg.Connection,
    destination: str,
    run_id: str,
    records: Sequence[ProfileRecord],
    hashes: dict,
    stored_emails: dict[str, tuple[str, str]],
) -> None:
    if not records:
        return
    now = datetime.now(UTC)
    with conn.cursor() as cursor:
        cursor.execute(
            "create temporary table if not exists esp_sync_batch "
            "(like activation.esp_sync_state including defaults) on commit delete rows"
        )
        with cursor.copy(
            "copy esp_sync_batch (destination, customer_key, email, email_encrypted, fields_hash, fields, "
            "run_id, synced_at) from stdin"
        ) as copy:
            for record in records:
                fields = {"first_name": record.first_name, "last_name": record.last_name, **record.properties}
                copy.write_row(
                    (
                        destination,
                        record.customer_key,
                        *stored_emails[record.customer_key],
                        hashes[record.customer_key],
                        orjson.dumps(fields).decode(),
                        run_id,
                        now,
                    )
                )
        cursor.execute(
            """
            insert into activation.esp_sync_state select * from esp_sync_batch
            on conflict (destination, customer_key) do update set
              email = excluded.email, email_encrypted = excluded.email_encrypted,
              fields_hash = excluded.fields_hash, fields = excluded.fields,
              run_id = excluded.run_id, synced_at = excluded.synced_at
            """
        )


def _record_outcomes(
    conn: psycopg.Connection, run_id: str, destination: str, action: str, outcomes: Sequence[RecordOutcome]
) -> None:
    problems = [o for o in outcomes if o.status != "ok"]
    if problems:
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into activation.esp_sync_outcomes "
                "(run_id, destination, customer_key, email, action, status, reason) "
                "values (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        run_id,
                        destination,
                        o.customer_key,
                        mask_value("email", o.email),
                        action,
                        o.status,
                        o.reason,
                    )
                    for o in problems
                ],
            )


def _finish_log(conn: psycopg.Connection, result: SyncResult, error: str | None = None) -> None:
    conn.execute(
        """
        update activation.esp_sync_log set status = %s, finished_at = now(), duration_seconds = %s,
          planned = %s, added = %s, updated = %s, unchanged = %s, removed = %s, failed = %s, rejected = %s,
          requests = %s, error = %s, fields_version = %s, inputs_until = %s, candidates = %s
        where run_id = %s
        """,
        (
            result.status,
            result.duration_seconds,
            result.plan.planned,
            result.added,
            result.updated,
            result.plan.unchanged,
            result.removed,
            result.failed + result.rejected,
            result.rejected,
            result.requests,
            error,
            result.plan.fields_version,
            None if result.plan.inputs_until is None else psycopg.types.json.Jsonb(result.plan.inputs_until),
            result.plan.candidates,
            result.run_id,
        ),
    )
    conn.commit()


def run_sync(
    conn: psycopg.Connection,
    client: EspClient | None,
    destination: str,
    list_id: str,
    *,
    dry_run: bool = False,
    marts_schema: str = "marts",
    full_resync: bool = False,
    after_batch: Callable[[int], None] | None = None,
) -> SyncResult:
    """Plan and (unless dry_run) push the difference. `after_batch(n)` runs after batch n is confirmed
    (a seam the crash tests use)."""
    started = time.monotonic()
    ensure_tables(conn)
    if not dry_run:
        _lock_destination(conn, destination)
    try:
        return _run_sync(
            conn, client, destination, list_id, dry_run, marts_schema, full_resync, after_batch, started
        )
    finally:
        if not dry_run:
            conn.rollback()
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (destination,))
            conn.commit()


class SyncAlreadyRunning(RuntimeError):
    """Another sync to the same destination holds its lock."""


def _lock_destination(conn: psycopg.Connection, destination: str) -> None:
    """Session advisory lock: two syncs to one destination never interleave (released if we die).
    Holding it, any real sync of this destination still logged `running` died without writing its end
    (killed): its log row becomes `abandoned`."""
    locked = conn.execute("select pg_try_advisory_lock(hashtext(%s))", (destination,)).fetchone()[0]
    conn.commit()
    if not locked:
        raise SyncAlreadyRunning(f"another sync to {destination} is running; try again when it has finished")
    conn.execute(
        "update activation.esp_sync_log set status = 'abandoned', finished_at = now(), "
        "duration_seconds = extract(epoch from now() - started_at), "
        "error = 'the process ended without finishing (killed?); found when the lock was next taken' "
        "where destination = %s and status = 'running' and not dry_run",
        (destination,),
    )
    conn.commit()


def _run_sync(
    conn: psycopg.Connection,
    client: EspClient | None,
    destination: str,
    list_id: str,
    dry_run: bool,
    marts_schema: str,
    full_resync: bool,
    after_batch: Callable[[int], None] | None,
    started: float,
) -> SyncResult:
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    conn.execute(
        "insert into activation.esp_sync_log (run_id, destination, list_id, dry_run, status, started_at) "
        "values (%s, %s, %s, %s, 'running', now())",
        (run_id, destination, list_id, dry_run),
    )
    conn.commit()
    plan = plan_sync(conn, destination, list_id, marts_schema, full_resync)
    result = SyncResult(run_id, destination, dry_run, plan)
    requests_before = client.request_count if client else 0
    try:
        if not dry_run:
            if client is None:
                raise ValueError("a real sync needs an ESP client")
            _push(conn, client, result, list_id, after_batch)
        result.status = (
            "dry_run" if dry_run else ("partial" if result.failed or result.rejected else "success")
        )
    except BaseException as error:
        conn.rollback()
        result.status = "crashed"
        result.requests = (client.request_count if client else 0) - requests_before
        result.duration_seconds = time.monotonic() - started
        _finish_log(conn, result, f"{type(error).__name__}: {error}")
        raise
    result.requests = (client.request_count if client else 0) - requests_before
    result.duration_seconds = time.monotonic() - started
    _finish_log(conn, result)
    return result


def _push(
    conn: psycopg.Connection,
    client: EspClient,
    result: SyncResult,
    list_id: str,
    after_batch: Callable[[int], None] | None,
) -> None:
    plan, destination, run_id = result.plan, result.destination, result.run_id
    batch_number = 0
    if plan.to_forget:
        conn.execute(
            "delete from activation.esp_sync_state where destination = %s and customer_key = any(%s)",
            (destination, plan.to_forget),
        )
        conn.commit()
    for chunk in chunked(plan.to_remove, client.removal_batch_size):
        try:
            outcomes = client.remove_from_list(chunk, list_id)
        except EspError as error:
            outcomes = failed_outcomes(chunk, str(error))
        removed = [o.customer_key for o in outcomes if o.status == "ok"]
        conn.execute(
            "delete from activation.esp_sync_state where destination = %s and customer_key = any(%s)",
            (destination, removed),
        )
        _record_outcomes(conn, run_id, destination, "remove", outcomes)
        conn.commit()
        result.removed += len(removed)
        _count_problems(result, outcomes)
        batch_number += 1
        if after_batch:
            after_batch(batch_number)
    new_keys = {r.customer_key for r in plan.to_add}
    for chunk in chunked(plan.to_add + plan.to_update, client.upsert_batch_size):
        try:
            outcomes = client.upsert_profiles(chunk, list_id)
        except EspError as error:
            outcomes = failed_outcomes(chunk, str(error))
        by_key = {r.customer_key: r for r in chunk}
        confirmed = [by_key[o.customer_key] for o in outcomes if o.status == "ok"]
        _write_confirmed(conn, destination, run_id, confirmed, plan.hashes, plan.stored_emails)
        _record_outcomes(conn, run_id, destination, "upsert", outcomes)
        conn.commit()
        added = sum(1 for r in confirmed if r.customer_key in new_keys)
        result.added += added
        result.updated += len(confirmed) - added
        _count_problems(result, outcomes)
        batch_number += 1
        if after_batch:
            after_batch(batch_number)


def _count_problems(result: SyncResult, outcomes: Sequence[RecordOutcome]) -> None:
    for outcome in outcomes:
        if outcome.status == "rejected":
            result.rejected += 1
            result.problems.append(outcome)
        elif outcome.status == "failed":
            result.failed += 1
            result.problems.append(outcome)


@dataclass
class ReconcileResult:
    members: int
    extra_removed: int
    missing_forgotten: int


def reconcile(
    conn: psycopg.Connection, client: EspClient, destination: str, list_id: str, marts_schema: str = "marts"
) -> ReconcileResult:
    """Compare the ESP list with what Sendwise intends, for when one side lost track (e.g. a rebuilt
    warehouse, a list edited by hand): members Sendwise would not push are removed from the list, and
    synced customers missing from it lose their state so that the next sync adds them again."""
    ensure_tables(conn)
    _lock_destination(conn, destination)
    try:
        members = client.list_member_emails(list_id)
        intended = plan_sync(conn, destination, list_id, marts_schema).pushed_emails
        protector = field_crypto.protector(conn)
        member_tokens = {protector.token(normalize.normalize_email(email)): email for email in members}
        extras = sorted(email for token, email in member_tokens.items() if token not in intended)
        removed = 0
        for chunk in chunked([ProfileRecord("(not in Sendwise)", email) for email in extras], 1_000):
            removed += sum(o.status == "ok" for o in client.remove_from_list(chunk, list_id))
        states = load_state(conn, destination).items()
        missing = [key for key, (token, _) in states if token not in member_tokens]
        conn.execute(
            "delete from activation.esp_sync_state where destination = %s and customer_key = any(%s)",
            (destination, missing),
        )
        conn.commit()
        return ReconcileResult(len(members), removed, len(missing))
    finally:
        conn.rollback()
        conn.execute("select pg_advisory_unlock(hashtext(%s))", (destination,))
        conn.commit()
