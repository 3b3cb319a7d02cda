"""API benchmark: authenticated GET balance at a held rate, the same GET unauthenticated in the
same run, and top-up POSTs, with compiled load generators on loopback.

    python -m bench.api [--rate 1000] [--topup-rate 300] [--seconds 15] [--workers 2]
                        [--baseline REV] [--repeats N]

- GET ``/accounts/{id}/balances`` as a subscriber (JWT), held at ``--rate`` requests/s by
  Debian's ``hey`` (``-q`` per worker x ``-c`` workers); then the same GET without
  authentication (`bench.api_unauthenticated`: the same scoping query and endpoint function,
  no token read, no scope checked), to show what authentication costs.
- POST ``/accounts/{id}/topups`` with an agent's API key, every request a new Idempotency-Key
  and the accounts taken in turn, by ``wrk`` (a Lua script; hey cannot vary a header) on a
  stated number of connections, each pausing after an answer so that together they offer
  ``--topup-rate``: the pause is the connections' interval less the mean latency of a 3 s
  warm-up (wrk pauses after the answer, so a fixed pause would offer less than the rate).

The API runs as ``uvicorn api.asgi:app --workers N`` on a database of its own (made,
migrated and dropped here). ``--baseline REV`` measures the code of a git revision too, in
the same run (``git archive`` into a scratch folder, its servers started there), each
measurement of it next to the same one of this tree's code (in turn first and second),
``--repeats`` times, the database vacuumed before each: on a shared machine the ratios
within a run are what to read. Prints hey's and wrk's summaries
and a table of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path

import httpx
import psutil
import psycopg

from api.auth.tokens import access_token
from meterline import db
from meterline.fleet import Fleet, FleetMeter, Provider, register_fleet
from meterline.kafka import free_port, stop_process
from meterline.settings import Settings
from meterline.users import ROLE_SCOPES, Role, Scope, User, create_api_key, create_user

ACCOUNTS = 100
TOPUP_CONNECTIONS = 16

_TOPUP_LUA = """
local counter, key, run, accounts, pause = 0, nil, nil, 0, 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args)
  key, run, accounts, pause = args[1], args[2], tonumber(args[3]), tonumber(args[4])
end
function delay() return pause end
function request()
  counter = counter + 1
  local account = string.format("BA-%d", (counter * 7 + tid) % accounts)
  return wrk.format("POST", "/accounts/" .. account .. "/topups",
    {["X-API-Key"] = key, ["Content-Type"] = "application/json",
     ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter},
    '{"amount": "1.00"}')
end
"""


async def prepare(settings: Settings) -> tuple[str, str, int]:
    """Accounts, a subscriber's access token, an agent's API key; (token, key, user id)."""
    await db.create_database(settings.database_url, exist_ok=False)
    await db.migrate(settings.database_url)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await register_fleet(conn, Fleet(
            gateway_id="bench-gw", price=Decimal(5), provider=Provider("bench", "Bench"),
            meters=[FleetMeter(serial=f"BM-{n}", account_id=f"BA-{n}",
                               opening_balance=Decimal(1000), address=f"Bench street {n}")
                    for n in range(ACCOUNTS)]))
        subscriber = await create_user(conn, "bench-subscriber", None, Role.SUBSCRIBER,
                                       accounts=["BA-0"])
        admin = await create_user(conn, "bench-admin", None, Role.ADMIN)
        assert subscriber is not None and admin is not None
        key = await create_api_key(conn, admin, Role.ADMIN, "bench agent", [Scope.TOPUPS])
        await conn.commit()
    user = User(subscriber, "bench-subscriber", Role.SUBSCRIBER, "", "ru")
    return access_token(settings, user, ROLE_SCOPES[Role.SUBSCRIBER]), key.key, subscriber


class Server:
    """A running API: its URL, and the CPU time its processes and its database sessions used."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], database: str) -> None:
        self.url, self.proc, self.database = url, proc, database

    def cpu_seconds(self) -> tuple[float, float]:
        """(uvicorn processes, PostgreSQL backends of this database), user + system."""
        api = psutil.Process(self.proc.pid)
        processes = [api, *api.children(recursive=True)]
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            pids = [pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,))]
        return _cpu(processes), _cpu(psutil.Process(pid) for pid in pids)


def _cpu(processes: Iterable[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _admin_url() -> str:
    return os.environ.get("METERLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def api_server(settings: Settings, app: str, workers: int, extra_env: dict[str, str],
               code: Path | None = None) -> Iterator[Server]:
    """The API served by uvicorn; ``code``: a folder of other code to serve (a baseline)."""
    url = f"http://127.0.0.1:{settings.api_port}"
    env = {**os.environ, **settings.as_env(), **extra_env}
    if code is not None:  # `python -m` puts the working folder first on the path
        env["PYTHONPATH"] = str(code)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port",
         str(settings.api_port), "--workers", str(workers), "--no-access-log",
         "--log-level", "warning"],
        env=env, cwd=code)
    try:
        deadline = time.monotonic() + 60
        while True:  # a benchmark may poll: the server gives no other sign it listens
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{app} did not start")
            time.sleep(0.2)
        yield Server(url, proc, settings.database_url.rsplit("/", 1)[1])
    finally:
        stop_process(proc)


Measured = tuple[float, float, str, float, float]  # req/s, p99 ms, summary, CPU ms/request


def measured(server: Server, run: Callable[[], tuple[float, float, str]],
             seconds: int) -> Measured:
    """The run's figures and the CPU milliseconds per request its API and database used."""
    api_before, db_before = server.cpu_seconds()
    rps, p99, out = run()
    api_after, db_after = server.cpu_seconds()
    served = rps * seconds
    return (rps, p99, out, (api_after - api_before) * 1000 / served,
            (db_after - db_before) * 1000 / served)


def hey(url: str, seconds: int, rate: int, headers: dict[str, str]) -> tuple[float, float, str]:
    """(requests/s, p99 ms, summary) of a GET held at ``rate`` for ``seconds``."""
    workers = max(1, rate // 50)
    args = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if re.search(r"\[(?!200\])\d+\]", out.split("Status code distribution:")[1]):
        raise RuntimeError(f"not every answer was 200:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out)[1]) * 1000  # type: ignore[index]
    return rps, p99, out


def wrk_topups(url: str, seconds: int, rate: int, key: str) -> tuple[float, float, str]:
    """(requests/s, p99 ms, summary) of top-ups offered at ``rate`` for ``seconds``, after a
    3 s warm-up that measures the latency the pauses leave room for."""
    interval = TOPUP_CONNECTIONS * 1000 / rate
    warm = _wrk(url, 3, round(interval), key)
    latency = _ms(re.search(r"Latency\s+([\d.]+\w+)", warm)[1])  # type: ignore[index]
    out = _wrk(url, seconds, max(0, round(interval - latency)), key)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1])  # type: ignore[index]
    return rps, p99, out


def _wrk(url: str, seconds: int, pause_ms: int, key: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_TOPUP_LUA)
    try:
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(TOPUP_CONNECTIONS), "-d", f"{seconds}s", "--latency",
             "-s", script.name, url, "--", key, uuid.uuid4().hex[:8], str(ACCOUNTS),
             str(pause_ms)],
            capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    if "Non-2xx" in out:
        raise RuntimeError(f"some top-ups were refused:\n{out}")
    return f"(pause {pause_ms} ms a connection)\n{out}"


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def vacuum(url: str) -> None:
    """What autovacuum would have cleaned by now (this server may run without it): each
    measurement starts from the same state, not from the dead rows of the ones before."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def baseline_code(revision: str, into: Path) -> Path:
    """The code of a git revision, archived into ``into``."""
    archive = subprocess.run(["git", "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--topup-rate", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", help="a git revision measured too, before this tree")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    database = _admin_url().rsplit("/", 1)[0] + f"/meterline_bench_api_{uuid.uuid4().hex[:8]}"
    settings = Settings(_env_file=None, database_url=database, api_port=free_port())
    token, key, user_id = asyncio.run(prepare(settings))
    seconds, balance, rate = args.seconds, "/accounts/BA-0/balances", args.rate
    bearer = {"Authorization": f"Bearer {token}"}
    scratch = tempfile.TemporaryDirectory(prefix="bench-api-")
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline:
        trees.insert(0, (args.baseline, baseline_code(args.baseline, Path(scratch.name))))

    def get(url: str, headers: dict[str, str]) -> Callable[[], tuple[float, float, str]]:
        return lambda: hey(url, seconds, rate, headers)

    def scenario(name: str, code: Path | None) -> Measured:
        app, env = "api.asgi:app", {}
        if name == UNAUTHENTICATED:
            app, env = "bench.api_unauthenticated:app", {"BENCH_USER_ID": str(user_id)}
        with api_server(settings, app, args.workers, env, code) as server:
            if name == TOPUPS:
                return measured(server, lambda: wrk_topups(
                    server.url, seconds, args.topup_rate, key), seconds)
            url, headers = server.url + balance, bearer
            if name == UNAUTHENTICATED:
                url, headers = server.url + "/open" + balance, {}
            hey(url, 3, rate, headers)  # warm-up
            return measured(server, get(url, headers), seconds)

    results: dict[tuple[str, str], list[Measured]] = {}
    print(f"load average before: {os.getloadavg()}")
    try:
        for repeat in range(args.repeats):
            for name in (AUTHENTICATED, UNAUTHENTICATED, TOPUPS):
                for tree, code in trees[::-1] if repeat % 2 else trees:  # ABBA
                    vacuum(settings.database_url)
                    results.setdefault((tree, name), []).append(scenario(name, code))
    finally:
        asyncio.run(db.drop_database(settings.database_url))
        scratch.cleanup()
    for (tree, name), runs in results.items():
        for n, (_, _, out, _, _) in enumerate(runs, 1):
            print(f"\n### {tree}: {name} (run {n})\n{out}")
    print(f"load average after: {os.getloadavg()}")
    print(f"\n## API, {args.workers} uvicorn workers, {seconds}s each (GET offered {rate}/s, "
          f"top-ups {args.topup_rate}/s), median of {args.repeats}")
    print(f"{'':14} {'':34} {'req/s':>7} {'p99 ms':>8} {'CPU ms/req: api':>16} "
          f"{'postgres':>9} {'fits 2 cores':>13}")
    medians: dict[tuple[str, str], tuple[float, float, float, float]] = {
        key: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
              statistics.median(r[3] for r in runs), statistics.median(r[4] for r in runs))
        for key, runs in results.items()}
    for (tree, name), (rps, p99, api_ms, db_ms) in medians.items():
        print(f"{tree[:14]:14} {name:34} {rps:7.0f} {p99:8.1f} {api_ms:16.2f} {db_ms:9.2f} "
              f"{2000 / (api_ms + db_ms):11.0f}/s")
    for tree, _ in trees:
        auth, open_ = medians[(tree, AUTHENTICATED)], medians[(tree, UNAUTHENTICATED)]
        print(f"{tree}: authentication costs {auth[2] - open_[2]:+.2f} ms of API CPU a request")
    if args.baseline:
        for name in (AUTHENTICATED, UNAUTHENTICATED, TOPUPS):
            before, after = medians[(args.baseline, name)], medians[("this tree", name)]
            print(f"{name}: this tree / {args.baseline}: API CPU {after[2] / before[2]:.2f}x, "
                  f"PostgreSQL CPU {after[3] / before[3]:.2f}x, p99 {after[1] / before[1]:.2f}x")


AUTHENTICATED = "GET balance, authenticated (JWT)"
UNAUTHENTICATED = "GET balance, unauthenticated"
TOPUPS = "POST top-up (API key)"


if __name__ == "__main__":
    main()
