"""Ledger throughput and latency (issue 3), every figure with its baseline in the same run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.ledger

(a) pgbench running the SQL transaction one transfer performs (BEGIN + set tenant in one round
    trip, claim+lock, the write carrying its outbox row and audit record, COMMIT: four round
    trips, as the app sends them) as the app role under RLS, in a shared schema that also holds
    other tenants' accounts;
(b) POST /transactions through a real `tenantry serve` process (token, tenant, RLS,
    idempotency, balances) at rising concurrency, wrk + Lua (a unique Idempotency-Key per
    request); the hot-account case (every transfer out of one account), also for pgbench;
(c) GET /accounts/{id}/balance against a bare Starlette + asyncpg handler reading the same row;
(d) POST /transactions/batch with 100 and 1,000 transfers per request (and hot, 100);
then py-spy (when installed) samples the server under (b) to show what limits it, (e) the
same server on uvloop shows what the event loop costs, and (f) POST with the outbox relay in
the server process (the default configuration; (b)-(e) run with it off, see server_env).
``BENCH_SERVER_SRC=/path/to/other/src`` runs the servers from another checkout;
``BENCH_OLD_SRC=/path/to/old/src`` adds, in (b), a server from that checkout measured at each
concurrency right before this one (old vs new in one run). (a) runs the transfer's SQL twice:
as written before the tenant filter (tenant_id by hand, RLS alone filtering) and as the unit
of work's tenant filter rewrites it (kernel/db/tenant_filter: ``tenant_id = $N`` on every
reference, the tenant's id in every INSERT: what the app sends, so the goal's ratio is of
that one), in ``ROUNDS`` alternating rounds with the peer, each figure their mean.
``--peer-pgledger DIR`` adds pgledger (a checkout of github.com/pgr0ss/pgledger, given by path:
bench/pgledger_peer.py) beside (a) at each client count and its batch of 100 beside (d), and
prints our figures as ratios of its: the goals of issue 20. ``--workers N`` serves (b)-(d)
and (f) with ``tenantry serve --workers N`` (the Redis rate-limit backend, which N > 1 needs)
and runs the bare handler of (c) with ``uvicorn --workers N``: the same number of processes
on both sides; CPU per request is then the whole process tree's.
Every phase is bounded in time (the whole run stays under 5 minutes). Uses its own database,
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import pgledger_peer
from bench._common import bench_database_url, free_port, pgbench, table, wrk
from tenantry.capabilities.audit.log import sql as audit_sql
from tenantry.capabilities.audit.sql import PENDING_PART
from tenantry.kernel.config import load_settings
from tenantry.kernel.db.dsn import database_of, with_database, with_user
from tenantry.kernel.db.privileged import admin_connection, tenant_unit_of_work
from tenantry.kernel.db.tenant_filter import TenantFilter
from tenantry.kernel.messaging.outbox import insert_sql as outbox_insert_sql
from tenantry.kernel.modules import discover
from tenantry.kernel.platform import Platform
from tenantry.kernel.tenancy.model import IsolationMode
from tenantry.kernel.tenancy.provisioning import ProvisionRequest
from tenantry_ledger.infrastructure import sql

PASSWORD = "bench-password-123"
SECONDS = 5
N = 100  # source accounts 1..N, target accounts N+1..2N
ROUNDS = 2  # alternating rounds of (a) per client count
OTHER_ACCOUNTS, OTHER_TENANTS = 10_000, 20  # other tenants' rows in the shared schema
API = "/api/v1/ledger"
ROOT = Path(__file__).resolve().parents[1]


def account_id(n: int) -> uuid.UUID:
    """Deterministic account ids, so pgbench can name them: md5('bench-<n>')::uuid."""
    return uuid.UUID(hashlib.md5(f"bench-{n}".encode()).hexdigest())  # noqa: S324 - an id


async def setup(url: str) -> dict[str, str]:
    platform = Platform.build(load_settings(None, database={"url": url}), discover())
    assert (await platform.prepare()).ok
    await platform.provisioner.create(
        ProvisionRequest(
            "bench",
            "Bench",
            IsolationMode.SHARED,
            options={"admin_email": "admin@bench.test", "admin_password": PASSWORD},
        )
    )
    tenant = await platform.catalog.by_slug("bench")
    assert tenant is not None
    async with tenant_unit_of_work(platform.db, tenant) as uow:
        await uow.executemany(
            "INSERT INTO ledger_accounts (tenant_id, id, code, name, type, currency,"
            " allow_negative) VALUES ($1, $2, $3, $3, 'asset', 'EUR', true)",
            [(tenant.id, account_id(n), f"bench-{n}") for n in range(1, 2 * N + 1)],
        )
    # A shared schema holds every tenant's rows: other tenants' accounts beside the bench's
    # (OTHER_ACCOUNTS, of OTHER_TENANTS tenants that exist only as ids), then ANALYZE. With
    # the bench's 200 rows alone, PostgreSQL's generic plan for the account lock scanned the
    # whole table instead of its primary key (docs/performance.md, "Where the transfer's
    # time went"): ~1 ms per statement that a deployment's table never costs.
    async with admin_connection(platform.db, as_owner=False) as conn:  # beside RLS
        await conn.execute(
            "INSERT INTO tenant_shared.ledger_accounts (tenant_id, id, code, name, type,"
            " currency, allow_negative) SELECT t, gen_random_uuid(), 'other-' || i, 'other',"
            " 'asset', 'EUR', true FROM generate_series(1, $1) AS i,"
            " LATERAL (SELECT md5('tenant-' || (i % $2))::uuid AS t) AS o",
            OTHER_ACCOUNTS,
            OTHER_TENANTS,
        )
        await conn.execute("ANALYZE tenant_shared.ledger_accounts")
    s = platform.settings.database
    app_dsn = with_user(url, s.app_user, s.app_password)
    await platform.close()
    return {"tenant_id": str(tenant.id), "schema": tenant.schema, "app_dsn": app_dsn}


# -- (a) pgbench -------------------------------------------------------------------------------
def _acc(var: str) -> str:
    return f"md5('bench-' || (:{var})::text)::uuid"


def _text(value: str) -> str:
    """A text literal without ':' (pgbench would read ':name' as a variable)."""
    return f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8')"


TXN = "md5((:client_id)::text || '-' || (:r)::text)::uuid"

#: ``sql.CLAIM_AND_LOCK`` as it was before the tenant filter (commit d76fd40): tenant_id
#: written by hand, no tenant condition (RLS alone filtered).
CLAIM_AND_LOCK_BY_HAND = """
WITH claim AS (
    INSERT INTO ledger_idempotency_keys (tenant_id, key, request_hash, transaction_id, status_code)
    SELECT $1, k.key, k.hash, k.txn, 201
    FROM unnest($2::text[], $3::bytea[], $4::uuid[]) AS k(key, hash, txn)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING key
), claimed AS (
    SELECT count(*) AS n FROM claim
), locked AS (
    SELECT a.id, a.code, a.type, a.currency, a.allow_negative, a.status,
           a.debits, a.credits, a.balance, a.entry_count
    FROM ledger_accounts a
    WHERE a.id = ANY($5::uuid[]) AND (SELECT n FROM claimed) > 0
    ORDER BY a.id
    FOR NO KEY UPDATE
)
SELECT 'k' AS kind, key, NULL::uuid AS id, NULL AS code, NULL AS type, NULL AS currency,
       NULL::boolean AS allow_negative, NULL AS status, NULL::numeric AS debits,
       NULL::numeric AS credits, NULL::numeric AS balance, NULL::bigint AS entry_count,
       NULL::timestamptz AS ts
FROM claim
UNION ALL
SELECT 'a', NULL, id, code, type, currency, allow_negative, status, debits, credits, balance,
       entry_count, NULL
FROM locked
UNION ALL
SELECT 't', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, clock_timestamp()
"""
LEDGER_TABLES = [
    "ledger_accounts",
    "ledger_entries",
    "ledger_transactions",
    "ledger_idempotency_keys",
    "outbox",
    "audit_pending",
]


def filtered(statement: str, tenant_id: str) -> str:
    """``statement`` as the unit of work's tenant filter sends it, the tenant's id (its new
    last parameter) written in as a literal for pgbench."""
    done = TenantFilter(LEDGER_TABLES).rewrite(statement)
    n = max(int(m) for m in re.findall(r"\$(\d+)", done.sql))
    out = done.sql.replace(f"CAST(${n} AS UUID)", f"'{tenant_id}'::uuid")
    return re.sub(r"%\((\w+)\)s", r":\1", out)  # sqlglot writes pgbench's :name so


def pgbench_script(tenant_id: str, schema: str, hot: bool, by_filter: bool = False) -> str:
    """One transfer's SQL transaction, statement for statement (the write computes the new
    totals in SQL because pgbench cannot carry the locked rows over to the next statement).
    ``by_filter``: every statement as the tenant filter rewrites it (else as written by hand
    before the filter: RLS alone filters)."""
    if by_filter:
        # The filter's text of today's CLAIM_AND_LOCK, renumbered as the hand-written one is
        # ($1 the tenant, so the substitutions below are the same for both).
        claim = re.sub(
            r"\$(\d+)",
            lambda m: f"${int(m.group(1)) + 1}",
            sql.CLAIM_AND_LOCK,
        )
        claim = filtered(claim, tenant_id)
        claim = (
            claim.replace("CAST($2 AS TEXT[])", "$2::text[]")
            .replace("CAST($3 AS BYTEA[])", "$3::bytea[]")
            .replace("CAST($4 AS UUID[])", "$4::uuid[]")
            .replace("CAST($5 AS UUID[])", "$5::uuid[]")
        )
    else:
        claim = CLAIM_AND_LOCK_BY_HAND
    claim = (
        claim.replace("$1", f"'{tenant_id}'::uuid")
        .replace("$2::text[]", "ARRAY['pgb-' || (:client_id)::text || '-' || (:r)::text]")
        .replace("$3::bytea[]", "ARRAY['\\x00'::bytea]")
        .replace("$4::uuid[]", f"ARRAY[{TXN}]")
        .replace("$5::uuid[]", f"ARRAY[{_acc('a')}, {_acc('b')}]")
    )
    write = f"""
WITH t AS (
    INSERT INTO ledger_transactions
        (tenant_id, id, description, metadata, amount, posted_at, reverses)
    VALUES ('{tenant_id}', {TXN}, '', '{{}}'::jsonb, 1, clock_timestamp(), NULL)
), u AS (
    UPDATE ledger_accounts a
    SET debits = a.debits + v.dr, credits = a.credits + v.cr,
        balance = a.balance + v.dr - v.cr, entry_count = a.entry_count + 1
    FROM (VALUES ({_acc("b")}, 1, 0, 0::int2), ({_acc("a")}, 0, 1, 1::int2)) AS v(id, dr, cr, seq)
    WHERE a.id = v.id
    RETURNING a.id, v.seq, v.dr, a.entry_count, a.debits, a.credits, a.balance
), e AS (
    INSERT INTO ledger_entries
        (tenant_id, transaction_id, seq, account_id, direction, amount, posted_at, entry_no,
         debits_after, credits_after, balance_after)
    SELECT '{tenant_id}', {TXN}, u.seq, u.id,
           CASE WHEN u.dr = 1 THEN 'debit' ELSE 'credit' END, 1, clock_timestamp(),
           u.entry_count, u.debits, u.credits, u.balance
    FROM u
), d AS (
    DELETE FROM ledger_idempotency_keys WHERE key = ANY('{{}}'::text[])
)
SELECT 1;
"""
    # The TransactionPosted.v1 outbox row, with the statement the dispatcher sends
    # (publish_many) and a payload of the size a two-entry transfer produces.
    payload = orjson.dumps(
        {
            "transaction_id": str(uuid.UUID(int=1)),
            "posted_at": "2026-01-01T00:00:00.000000+00:00",
            "description": "",
            "entries": [
                {
                    "account_id": str(account_id(n)),
                    "account_code": f"bench-{n}",
                    "currency": "EUR",
                    "direction": d,
                    "amount": 1,
                }
                for n, d in ((N + 1, "debit"), (1, "credit"))
            ],
            "reverses": None,
        }
    ).decode()
    headers = orjson.dumps(
        {
            "correlation_id": str(uuid.UUID(int=2)),
            "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
            "tenant_id": tenant_id,
        }
    ).decode()
    # The transfer's audit record (audit_pending, as capabilities/audit/log writes it), of
    # the size a two-entry posting produces.
    record = orjson.dumps(
        {
            "occurred_at": "2026-01-01T00:00:00.000000+00:00",
            "actor": "user:" + str(uuid.UUID(int=3)),
            "actor_kind": "user",
            "client": None,
            "ip": "127.0.0.1",
            "action": "ledger.transaction.post",
            "resource": "transaction:" + str(uuid.UUID(int=1)),
            "outcome": "success",
            "request_id": "0" * 32,
            "trace_id": "1" * 32,
            "before": None,
            "after": {
                "amount": 1,
                "reverses": None,
                "entries": [
                    [str(account_id(N + 1)), "debit", 1],
                    [str(account_id(1)), "credit", 1],
                ],
            },
            "details": {"idempotency_key": "pgb-1-1"},
        }
    ).decode()
    audit = (
        audit_sql(PENDING_PART, schema)
        .replace("$1", f"'{tenant_id}'::uuid")
        .replace(
            "$2::jsonb",
            "jsonb_build_array(jsonb_build_object('id', md5((:client_id)::text || '-a-' ||"
            f" (:r)::text)::uuid) || {_text(record)}::jsonb)",
        )
    )
    outbox = (
        outbox_insert_sql(None)
        .replace("$1", f"'{tenant_id}'::uuid")
        .replace("$2::uuid[]", "ARRAY[md5((:client_id)::text || '-m-' || (:r)::text)::uuid]")
        .replace("$3::text[]", "ARRAY['ledger.TransactionPosted.v1']")
        .replace("$4::text[]", "ARRAY['event']")
        .replace("$5::text[]", "ARRAY[NULL]::text[]")
        .replace("$6::text[]", f"ARRAY[{_text(payload)}]")
        .replace("$7::text[]", f"ARRAY[{_text(headers)}]")
    )
    # The write carries the outbox row and the audit record as the unit of work joins them
    # (kernel/db/commit.join: uow.execute_with_collected), so the COMMIT follows at once.
    write = (
        write.rstrip().removesuffix(";").removesuffix("SELECT 1").rstrip()
        + f", collected_0 AS ({outbox}), collected_1 AS ({audit}) SELECT 1"
    )
    if by_filter:  # as the repository writes it now: no tenant_id of its own
        write = filtered(
            write.replace("(tenant_id, transaction_id", "(transaction_id")
            .replace("(tenant_id, id, description", "(id, description")
            .replace(f"VALUES ('{tenant_id}', ", "VALUES (")
            .replace(f"SELECT '{tenant_id}', ", "SELECT "),
            tenant_id,
        )
    write += ";"
    one_line = lambda s: " ".join(s.split())  # noqa: E731 - pgbench wants one line per command
    return "\n".join(
        [
            "\\set a 1" if hot else f"\\set a random(1, {N})",
            f"\\set b random({N + 1}, {2 * N})",
            "\\set r random(1, 1000000000000)",
            # BEGIN and the settings in one round trip, as the unit of work sends them
            # (one simple-query message there; a pipeline here, as -M prepared allows).
            "\\startpipeline",
            "BEGIN;",
            f"SELECT set_config('app.tenant_id', '{tenant_id}', true),"
            f" set_config('search_path', '\"{schema}\"', true),"
            " set_config('app.scope', 'tenant', true);",
            "\\endpipeline",
            one_line(claim) + ";",
            one_line(write),
            "COMMIT;",
        ]
    )


# -- servers -----------------------------------------------------------------------------------
def server_env(url: str, *, relay: bool = False) -> dict[str, str]:
    """The server's environment. The outbox relay is off except in (f): with it on, every
    figure after the first POST phase also paid for delivering that phase's backlog (reporting
    and notifications handlers), and the GET figures most of all. ``BENCH_SERVER_SRC``: run
    the server from another checkout's ``src`` (before/after comparisons in one run)."""
    env = {"DATABASE_URL": url}
    if WORKERS > 1:  # per-process buckets are refused with several processes
        env["TENANTRY_RATELIMIT__BACKEND"] = "redis"
    if not relay:
        env["TENANTRY_MESSAGING__RELAY_IN_PROCESS"] = "false"
    src = os.environ.get("BENCH_SERVER_SRC")
    if src:
        env["PYTHONPATH"] = src
    return env


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], health: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(health, timeout=1)  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"{cmd[0]} died: {err[-2000:]}") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc: a supervisor's worker processes)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants (Linux /proc)."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


#: Server processes of (b)-(d) and (f), and of the bare handler (``--workers``).
WORKERS = 1


def serve_cmd(exe: str, port: int) -> list[str]:
    cmd = [exe, "serve", "--port", str(port)]
    return [*cmd, "--workers", str(WORKERS)] if WORKERS > 1 else cmd


def timed_wrk(pid: int, url: str, lua: str, conns: int, seconds: int) -> dict[str, float]:
    """wrk, plus the server process's CPU milliseconds per request (load-independent-ish)."""
    before = cpu_seconds(pid)
    r = wrk(url, lua, conns, seconds)
    r["cpu_ms"] = 1000 * (cpu_seconds(pid) - before) / max(r["requests"], 1)
    return r


def token(base: str) -> str:
    body = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "username": "admin@bench.test",
            "password": PASSWORD,
            "tenant": "bench",
        }
    ).encode()
    with urllib.request.urlopen(base + "/api/v1/identity/token", body, timeout=10) as r:  # noqa: S310
        return str(orjson.loads(r.read())["access_token"])


# -- (b) wrk -----------------------------------------------------------------------------------
def transfer_lua(tok: str, hot: bool) -> str:
    ids = ", ".join(f'"{account_id(n)}"' for n in range(1, 2 * N + 1))
    src = "ids[1]" if hot else f"ids[math.random(1, {N})]"
    return f"""
local ids = {{{ids}}}
local counter = 0
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local prefix = tostring(math.random(1, 1000000000)) .. "-" .. tostring(os.time())
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {tok}"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local a = {src}
  local b = ids[math.random({N + 1}, {2 * N})]
  wrk.headers["Idempotency-Key"] = prefix .. "-" .. counter
  local body = '{{"entries":[{{"account_id":"' .. b .. '","direction":"debit","amount":1}},'
    .. '{{"account_id":"' .. a .. '","direction":"credit","amount":1}}]}}'
  return wrk.format(nil, "{API}/transactions", nil, body)
end
"""


def get_lua(tok: str | None) -> str:
    return f'wrk.headers["Authorization"] = "Bearer {tok}"\n' if tok else ""


# -- (d) batch ---------------------------------------------------------------------------------
async def batch_run(base: str, tok: str, size: int, hot: bool, seconds: float) -> dict[str, float]:
    """Two concurrent clients posting batches of ``size`` for ``seconds``."""
    ids = [str(account_id(n)) for n in range(1, 2 * N + 1)]
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
    latencies: list[float] = []
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def worker(c: httpx.AsyncClient, w: int) -> None:
        nonlocal accepted
        k = 0
        while time.perf_counter() < deadline:
            k += 1
            items = []
            for i in range(size):
                a = ids[0] if hot else ids[(k * 7 + i * 13 + w) % N]
                b = ids[N + (k * 11 + i * 17 + w) % N]
                items.append(
                    {
                        "idempotency_key": f"b{w}-{k}-{i}-{uuid.uuid4().hex[:8]}",
                        "entries": [
                            {"account_id": b, "direction": "debit", "amount": 1},
                            {"account_id": a, "direction": "credit", "amount": 1},
                        ],
                    }
                )
            body = orjson.dumps({"transactions": items})
            t0 = time.perf_counter()
            r = await c.post(base + f"{API}/transactions/batch", content=body, headers=headers)
            latencies.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text[:500]
            accepted += r.json()["accepted"]

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as c:
        await asyncio.gather(*(worker(c, w) for w in range(2)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "tps": accepted / elapsed,
        "n": accepted,
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
    }


# -- profile -----------------------------------------------------------------------------------
def profile(pid: int, seconds: int, run_load: Any) -> list[tuple[str, float]] | str:
    """py-spy samples the server while ``run_load()`` runs: share of samples per category."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy not installed (pip install py-spy)"
    out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name  # noqa: SIM115
    spy = subprocess.Popen(
        [
            exe,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            out,
            "--nonblocking",
            "--subprocesses",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    run_load()
    try:
        spy.wait(seconds + 20)
    except subprocess.TimeoutExpired:
        spy.kill()
        return "py-spy did not finish"
    if spy.returncode != 0:
        return f"py-spy failed: {(spy.stderr.read() if spy.stderr else '')[-300:]}"
    stacks = collections.Counter[str]()
    for line in Path(out).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks[stack] += int(count)
    os.unlink(out)
    total = sum(stacks.values()) or 1
    categories = [
        ("event loop idle (waiting: select/epoll)", ("select (selectors.py", "_run_once")),
        ("asyncpg (protocol, codecs, pool)", ("asyncpg",)),
        ("JWT verify (signature, claims)", ("tokens.py", "jwt/", "cryptography")),
        ("FastAPI/Starlette routing, deps, request parsing", ("fastapi/", "starlette/")),
        ("uvicorn/httptools (HTTP parsing, transport)", ("uvicorn/", "httptools")),
        ("pydantic validation", ("pydantic",)),
        ("ledger module (domain, service, repository)", ("tenantry_ledger/",)),
        ("tenantry kernel (middleware, uow, catalog)", ("tenantry/kernel",)),
    ]
    shares: dict[str, float] = collections.defaultdict(float)
    leaves = collections.Counter[str]()
    for stack, n in stacks.items():
        frames = stack.split(";")
        leaves[frames[-1][:90]] += n
        last = "other"
        # attribute the sample to the innermost frame that belongs to a category
        for frame in reversed(frames):
            hit = next((name for name, keys in categories if any(k in frame for k in keys)), None)
            if hit:
                last = hit
                break
        shares[last] += n
    result = [(k, 100 * v / total) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])]
    result += [(f"  top leaf: {leaf}", 100 * n / total) for leaf, n in leaves.most_common(6)]
    return result


async def drop(url: str) -> None:
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_of(url)}" WITH (FORCE)')
    finally:
        await conn.close()


async def clear_outbox(url: str) -> None:
    """Drop pgbench's outbox rows, so the server's relay does not deliver them during (b)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM tenant_shared.outbox")
    finally:
        await conn.close()


async def check_books(url: str) -> tuple[int, bool]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM tenant_shared.ledger_transactions) AS n,"
            " (SELECT sum(debits) = sum(credits) AND sum(balance) = 0"
            "  FROM tenant_shared.ledger_accounts) AS ok"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["n"]), bool(row["ok"])


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}


def goals(
    ours_a: dict[str, float],
    peer: dict[str, float],
    post: dict[int, float],
    batch: dict[int, float],
) -> list[str]:
    """Issue 20's goals as ratios of pgledger's figures of the same run."""
    out = ["", "Against pgledger (same run):"]
    for c in (1, 4, 16):
        ratio = ours_a[f"c{c}"] / peer[f"c{c}"]
        out.append(
            f"  (a) our transfer SQL as sent, {c:>2} clients: {ratio:.0%} of it (goal >= 100 %)"
        )
    for c in (4, 16):
        ratio = post[c] / peer[f"c{c}"]
        out.append(f"  (b) POST /transactions, {c:>2} conns: {ratio:.0%} of it (goal >= 50 %)")
    if 1000 in batch:
        ratio = batch[1000] / peer["batch100"]
        out.append(f"  (d) batch x1000 vs pgledger's x100: {ratio:.1f}x (goal >= 2x)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peer-pgledger",
        type=Path,
        metavar="DIR",
        help="a checkout of github.com/pgr0ss/pgledger to run beside ours",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes on both sides of (b)-(d) and (f) (default 1)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    global WORKERS
    WORKERS = args.workers
    peer_url = bench_database_url("pgledger") if args.peer_pgledger else None
    peer_ids: list[str] = []
    if peer_url:
        try:
            peer_ids = asyncio.run(pgledger_peer.install(peer_url, args.peer_pgledger))
        except pgledger_peer.PeerError as exc:
            sys.exit(str(exc))
    peer: dict[str, float] = {}
    started = time.perf_counter()
    url = bench_database_url("ledger")
    info = asyncio.run(setup(url))
    tid, schema, app_dsn = info["tenant_id"], info["schema"], info["app_dsn"]
    rows: list[list[object]] = []
    notes: list[str] = []
    try:
        # (a) pgbench: the physical baseline. ROUNDS alternating rounds per client count (by
        # hand, as the filter rewrites it, the peer), each figure their mean: the ratios of
        # one round moved by 10-20 % on a shared machine.
        base_tps: dict[str, float] = {}
        sent_tps: dict[str, float] = {}  # what the app sends: the tenant filter's text
        hand_script = pgbench_script(tid, schema, hot=False)
        sent_script = pgbench_script(tid, schema, hot=False, by_filter=True)
        peer_script = pgledger_peer.transfer_script(peer_ids) if peer_url else ""
        for clients in (1, 4, 16):
            got: dict[str, list[dict[str, float]]] = {"hand": [], "sent": [], "peer": []}
            for _ in range(ROUNDS):
                got["hand"].append(pgbench(app_dsn, hand_script, clients, SECONDS))
                got["sent"].append(pgbench(app_dsn, sent_script, clients, SECONDS))
                if peer_url:  # the peer in the same minutes, right after ours
                    got["peer"].append(
                        pgledger_peer.pgbench(peer_url, peer_script, clients, SECONDS)
                    )
            mean = {k: _mean(v) for k, v in got.items() if v}
            r, f = mean["hand"], mean["sent"]
            base_tps[f"c{clients}"] = r["tps"]
            sent_tps[f"c{clients}"] = f["tps"]
            rows.append(
                [
                    f"(a) pgbench: one transfer's SQL by hand ({r['failed']:.0f} failed)",
                    clients,
                    f"{r['tps']:.0f}",
                    f"{r['lat']:.1f} avg",
                    "-",
                    "-",
                    "-",
                    "-",
                ]
            )
            rows.append(
                [
                    f"(a) the same as the app sends it: tenant filter ({f['failed']:.0f} failed)",
                    clients,
                    f"{f['tps']:.0f}",
                    f"{f['lat']:.1f} avg",
                    "-",
                    "-",
                    f"{f['tps'] / r['tps']:.0%} of by hand",
                    "-",
                ]
            )
            if peer_url:
                pr = mean["peer"]
                peer[f"c{clients}"] = pr["tps"]
                rows.append(
                    [
                        "(a) pgledger_create_transfer (peer, pgbench)",
                        clients,
                        f"{pr['tps']:.0f}",
                        f"{pr['lat']:.1f} avg",
                        "-",
                        "-",
                        f"app's {f['tps'] / pr['tps']:.0%} of it",
                        "-",
                    ]
                )
        r = pgbench(app_dsn, pgbench_script(tid, schema, hot=True), 16, SECONDS)
        base_tps["hot"] = r["tps"]
        rows.append(
            [
                "(a) pgbench: hot account (all from one account)",
                16,
                f"{r['tps']:.0f}",
                f"{r['lat']:.1f} avg",
                "-",
                "-",
                "-",
                "-",
            ]
        )
        best_a = max(base_tps["c1"], base_tps["c4"], base_tps["c16"])
        asyncio.run(clear_outbox(url))

        port = free_port()
        exe = str(Path(sys.executable).with_name("tenantry"))
        with process(
            serve_cmd(exe, port),
            server_env(url),
            f"http://127.0.0.1:{port}/healthz",
        ) as srv:
            base = f"http://127.0.0.1:{port}"
            tok = token(base)
            lua = transfer_lua(tok, hot=False)
            wrk(base + f"{API}/transactions", lua, 4, 2)  # warm-up
            best_b = 0.0
            old = os.environ.get("BENCH_OLD_SRC")
            with contextlib.ExitStack() as stack:
                if old:  # the same server from the old checkout, measured right before
                    port_old = free_port()
                    srv_old = stack.enter_context(
                        process(
                            [exe, "serve", "--port", str(port_old)],
                            {**server_env(url), "PYTHONPATH": old},
                            f"http://127.0.0.1:{port_old}/healthz",
                        )
                    )
                    base_old = f"http://127.0.0.1:{port_old}"
                    lua_old = transfer_lua(token(base_old), hot=False)
                    wrk(base_old + f"{API}/transactions", lua_old, 4, 2)  # warm-up
                for conns in (1, 4, 16, 64):
                    if not old:
                        continue
                    o = timed_wrk(
                        srv_old.pid, base_old + f"{API}/transactions", lua_old, conns, SECONDS
                    )
                    new = timed_wrk(srv.pid, base + f"{API}/transactions", lua, conns, SECONDS)
                    for label, w in (("old checkout", o), ("this checkout", new)):
                        rows.append(
                            [
                                f"(b) POST /transactions, {label} ({w['errors']:.0f} errors)",
                                conns,
                                f"{w['rps']:.0f}",
                                f"{w['p50']:.1f}",
                                f"{w['p95']:.1f}",
                                f"{w['p99']:.1f}",
                                f"{new['rps'] / o['rps']:.0%} new/old" if w is new else "-",
                                f"{w['cpu_ms']:.2f}",
                            ]
                        )
            post_rps: dict[int, float] = {}
            for conns in (1, 4, 16, 64):
                w = timed_wrk(srv.pid, base + f"{API}/transactions", lua, conns, SECONDS)
                best_b = max(best_b, w["rps"])
                post_rps[conns] = w["rps"]
                rows.append(
                    [
                        f"(b) POST /transactions ({w['errors']:.0f} errors)",
                        conns,
                        f"{w['rps']:.0f}",
                        f"{w['p50']:.1f}",
                        f"{w['p95']:.1f}",
                        f"{w['p99']:.1f}",
                        f"{w['rps'] / best_a:.0%} of best (a)",
                        f"{w['cpu_ms']:.2f}",
                    ]
                )
            w = timed_wrk(
                srv.pid, base + f"{API}/transactions", transfer_lua(tok, hot=True), 16, SECONDS
            )
            rows.append(
                [
                    f"(b) POST /transactions, hot account ({w['errors']:.0f} errors)",
                    16,
                    f"{w['rps']:.0f}",
                    f"{w['p50']:.1f}",
                    f"{w['p95']:.1f}",
                    f"{w['p99']:.1f}",
                    f"{w['rps'] / base_tps['hot']:.0%} of (a) hot",
                    f"{w['cpu_ms']:.2f}",
                ]
            )
            # p95 at about half of the max load: wrk -R is not available; 4 connections is
            # the lightest level close to half the best throughput (see the table).

            # (c) GET balance vs the bare handler.
            acc = account_id(N + 1)
            g = timed_wrk(
                srv.pid, base + f"{API}/accounts/{acc}/balance", get_lua(tok), 16, SECONDS
            )
            bport = free_port()
            with process(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.bare_balance:app",
                    "--workers",
                    str(WORKERS),
                    "--port",
                    str(bport),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                {"BARE_DSN": url, "BARE_SCHEMA": schema},
                f"http://127.0.0.1:{bport}/balance/{acc}",
            ) as bp:
                bare = timed_wrk(bp.pid, f"http://127.0.0.1:{bport}/balance/{acc}", "", 16, SECONDS)
            rows.append(
                [
                    "(c) bare Starlette+asyncpg, same row (baseline)",
                    16,
                    f"{bare['rps']:.0f}",
                    f"{bare['p50']:.1f}",
                    f"{bare['p95']:.1f}",
                    f"{bare['p99']:.1f}",
                    "-",
                    f"{bare['cpu_ms']:.2f}",
                ]
            )
            rows.append(
                [
                    f"(c) GET /accounts/{{id}}/balance ({g['errors']:.0f} errors)",
                    16,
                    f"{g['rps']:.0f}",
                    f"{g['p50']:.1f}",
                    f"{g['p95']:.1f}",
                    f"{g['p99']:.1f}",
                    f"{g['rps'] / bare['rps']:.0%} of bare",
                    f"{g['cpu_ms']:.2f}",
                ]
            )
            g1 = timed_wrk(srv.pid, base + f"{API}/accounts/{acc}/balance", get_lua(tok), 1, 3)
            rows.append(
                [
                    "(c) GET balance, one connection",
                    1,
                    f"{g1['rps']:.0f}",
                    f"{g1['p50']:.2f}",
                    f"{g1['p95']:.2f}",
                    f"{g1['p99']:.2f}",
                    "-",
                    f"{g1['cpu_ms']:.2f}",
                ]
            )

            # (d) batch.
            batch_tps: dict[int, float] = {}
            if peer_url:
                script = pgledger_peer.transfer_script(peer_ids, 100)
                pb = pgledger_peer.pgbench(peer_url, script, 4, SECONDS)
                peer["batch100"] = 100 * pb["tps"]
                rows.append(
                    [
                        "(d) pgledger_create_transfers x100 (peer, pgbench, 4 clients)",
                        4,
                        f"{peer['batch100']:.0f} transfers/s",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                    ]
                )
            for size, hot in ((100, False), (1000, False), (100, True)):
                before = cpu_seconds(srv.pid)
                d = asyncio.run(batch_run(base, tok, size, hot, SECONDS + 1))
                if not hot:
                    batch_tps[size] = d["tps"]
                cpu = 1000 * (cpu_seconds(srv.pid) - before) / max(d["n"], 1)
                name = f"(d) POST /transactions/batch x{size}" + (", hot account" if hot else "")
                rows.append(
                    [
                        name + " (2 clients)",
                        2,
                        f"{d['tps']:.0f} transfers/s",
                        f"{d['p50']:.0f}",
                        f"{d['p95']:.0f}",
                        "-",
                        f"{d['tps'] / best_b:.1f}x one-by-one (b)",
                        f"{cpu:.3f}/transfer",
                    ]
                )

            # Profile the server under the transfer load.
            prof = profile(
                srv.pid,
                SECONDS,
                lambda: wrk(base + f"{API}/transactions", lua, 16, SECONDS - 1),
            )
        # The same server on uvloop (`tenantry serve` runs uvicorn inside asyncio.run, so it
        # gets the pure-Python asyncio loop): how much of the cost is the event loop.
        port2 = free_port()
        launch = (
            "import sys, asyncio, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy());"
            f" sys.argv = ['tenantry', 'serve', '--port', '{port2}'];"
            " from tenantry.cli import main; main()"
        )
        with process(
            [sys.executable, "-c", launch],
            server_env(url),
            f"http://127.0.0.1:{port2}/healthz",
        ) as srv2:
            base2 = f"http://127.0.0.1:{port2}"
            tok2 = token(base2)
            for label, path, script in (
                ("POST /transactions", f"{API}/transactions", transfer_lua(tok2, hot=False)),
                ("GET balance", f"{API}/accounts/{account_id(N + 1)}/balance", get_lua(tok2)),
            ):
                u = timed_wrk(srv2.pid, base2 + path, script, 16, SECONDS)
                rows.append(
                    [
                        f"(e) {label}, server on uvloop ({u['errors']:.0f} errors)",
                        16,
                        f"{u['rps']:.0f}",
                        f"{u['p50']:.1f}",
                        f"{u['p95']:.1f}",
                        f"{u['p99']:.1f}",
                        "-",
                        f"{u['cpu_ms']:.2f}",
                    ]
                )
        # (f) The default configuration: the outbox relay in the server process, delivering
        # TransactionPosted.v1 to reporting and notifications while the server takes posts.
        port3 = free_port()
        with process(
            serve_cmd(exe, port3),
            server_env(url, relay=True),
            f"http://127.0.0.1:{port3}/healthz",
        ) as srv3:
            base3 = f"http://127.0.0.1:{port3}"
            tok3 = token(base3)
            f = timed_wrk(
                srv3.pid, base3 + f"{API}/transactions", transfer_lua(tok3, False), 16, SECONDS
            )
            rows.append(
                [
                    f"(f) POST /transactions, relay in the server ({f['errors']:.0f} errors)",
                    16,
                    f"{f['rps']:.0f}",
                    f"{f['p50']:.1f}",
                    f"{f['p95']:.1f}",
                    f"{f['p99']:.1f}",
                    f"{f['rps'] / best_a:.0%} of best (a)",
                    f"{f['cpu_ms']:.2f}",
                ]
            )
        n, ok = asyncio.run(check_books(url))
        notes.append(f"{n} transactions posted in total; books balanced: {ok}")
        if peer:
            notes += goals(sent_tps, peer, post_rps, batch_tps)
    finally:
        asyncio.run(drop(url))
        if peer_url:
            asyncio.run(pgledger_peer.drop(peer_url))
    print(
        table(
            f"Ledger ({WORKERS} server process(es) a side; 2-core machine shared with other work)",
            ["case", "conns", "per s", "p50 ms", "p95 ms", "p99 ms", "ratio", "srv CPU ms"],
            rows,
        )
    )
    if isinstance(prof, str):
        print("\nprofile:", prof)
    else:
        print("\nServer CPU samples under POST /transactions, 16 connections (py-spy):")
        for name, share in prof:
            print(f"  {share:5.1f} %  {name}")
    for note in notes:
        print(note)
    print(f"\nwall clock: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
