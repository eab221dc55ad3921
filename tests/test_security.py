"""Issue 8.7: statements are never built from data, secrets never reach the logs, and every
service of the stack and of ours listens on the loopback only. (Refused tokens: test_api.)"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tomllib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from api.auth import issue_token
from eventpipe.settings import Settings
from tests.conftest import LOGS, ROOT, Process
from tests.sql_audit import audit_source

# --------------------------------------------------------------- (a) SQL is parameterised


SERVICES = ("api", "eventpipe", "sinks", "streams", "workers")  # what runs in production


def _service_sources() -> list[Path]:
    """The Python files of the service packages (bench/, a harness, is not one)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert set(SERVICES) <= shipped  # a renamed package is noticed here
    return [p for package in SERVICES for p in sorted((ROOT / package).rglob("*.py"))]


def test_the_audit_tells_built_statements_from_constant_ones() -> None:
    bad = '''
def f(cur, user, table, ids):
    cur.execute(f"SELECT * FROM events WHERE user_id = '{user}'")
    cur.execute("SELECT * FROM " + table)
    cur.execute("SELECT * FROM events WHERE id = %s" % ids)
    cur.execute("SELECT * FROM {}".format(table))
    where = "a = %s"
    where += table
    cur.execute(f"SELECT 1 WHERE {where}")
    for statement in table:
        cur.executemany(statement, ids)
    cur.copy(f"COPY {table} FROM STDIN")
'''
    good = '''
from psycopg import sql
_COLUMNS = ("a", "b")
_INSERT = f"INSERT INTO t ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
async def f(cur, user, status, name, rows):
    where, params = "user_id = %s", [user]
    if status:
        where += " AND status = %s"
    await cur.execute(f"SELECT count(*) FROM t WHERE {where}", params)
    await cur.executemany(_INSERT + " ON CONFLICT DO UPDATE SET " + _SET, rows)
    for statement, _ in ((_INSERT, 1), ("DELETE FROM t", 2)):
        await cur.execute(statement, rows)
    await cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    await cur.execute("SELECT %s", (user,))
'''
    checked, findings = audit_source(bad)
    assert checked == 7
    assert [f.line for f in findings] == [3, 4, 5, 6, 9, 11, 12]
    assert audit_source(good) == (5, [])


def test_every_sql_statement_of_the_services_is_parameterised() -> None:
    sources = _service_sources()
    assert {p.relative_to(ROOT).parts[0] for p in sources} == set(SERVICES)
    checked, findings = 0, []
    for path in sources:
        n, found = audit_source(path.read_text(), str(path.relative_to(ROOT)))
        checked += n
        findings += found
    assert checked >= 15  # the statements of api/, sinks/ were all seen
    assert findings == []


# --------------------------------------------------------------- (b) no secret is logged


def test_no_token_or_secret_reaches_the_logs(
        client: httpx.Client, settings: Settings, process_env: dict[str, str],
        worker: Process) -> None:
    user = str(uuid.uuid4())
    token = issue_token(settings, user)
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/events/purposes", headers=auth, json={
        "objective": "신규 고객 유치", "storeName": "비밀가게", "industry": "카페",
        "address": "서울"})
    assert created.status_code == 201, created.text
    event_id = created.json()["eventDraftId"]
    assert client.get(f"/api/events/{event_id}", headers=auth).status_code == 200
    # Refusals are where a token is most tempting to log.
    expired = issue_token(settings, user, ttl_seconds=-10)
    forged = jwt.encode({"sub": user, "exp": 4_000_000_000}, "not-the-secret-" * 3,
                        algorithm="HS256")
    refused = [expired, forged, token[:-4], token + "x"]
    for bad in refused:
        r = client.get(f"/api/events/{event_id}", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
    assert client.post("/api/events/purposes", headers=auth, json={"x": 1}).status_code == 422
    password = urlsplit(settings.database_url).password or ""
    secrets = {"the token": token, **{f"refused token {i}": t for i, t in enumerate(refused)},
               "the JWT secret": settings.jwt_secret,
               "the blob signing key": settings.blob_signing_key,
               "the database URL's credentials": f":{password}@",
               "the database password as a key": f"password={password}"}
    logs = {name: (LOGS / name).read_text(errors="replace")
            for name in ("test-api.log", "test-worker.log")}
    assert "POST /api/events/purposes" in logs["test-api.log"]  # the right log, written
    leaks = [(what, log) for log, text in logs.items()
             for what, secret in secrets.items() if secret and secret in text]
    assert leaks == []


# --------------------------------------------------------------- (c) loopback only

def _hex_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp's address: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(text)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def _listeners() -> dict[int, list[tuple[str, int]]]:
    """pid -> the (address, port) of each TCP socket it listens on."""
    by_inode: dict[str, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            host, port = fields[1].split(":")
            by_inode[fields[9]] = (str(_hex_address(host)), int(port, 16))
    found: dict[int, list[tuple[str, int]]] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue  # gone, or not ours to read
        for link in links:
            if link.startswith("socket:[") and link[8:-1] in by_inode:
                found.setdefault(int(fd_dir.parent.name), []).append(by_inode[link[8:-1]])
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _stack_pids() -> dict[str, int]:
    """The stack's own services that run (external ones have no pid here)."""
    status = subprocess.run(["bash", "stack/stack.sh", "status"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    pids = {}
    for line in status.splitlines():
        name, state, pid, *_ = line.split()
        if state == "running" and pid.isdigit():
            pids[name] = int(pid)
    return pids


def test_the_stack_worker_and_api_listen_on_the_loopback_only(
        api_url: str, worker: Process, process_env: dict[str, str]) -> None:
    stack = _stack_pids()
    if not stack:
        pytest.skip("every service is external: nothing of the stack's own to inspect")
    listeners = _listeners()
    api_port = urlsplit(api_url).port
    api_pids = [pid for pid, socks in listeners.items() if any(p == api_port for _, p in socks)]
    ours = {**stack, "worker": worker.proc.pid, "api": api_pids[0]}
    seen = {name: listeners.get(pid, []) for name, pid in ours.items()}
    # Each listens where it is expected to, and nowhere but the loopback.
    assert (urlsplit(api_url).hostname, api_port) in [(a, p) for a, p in seen["api"]]
    assert int(process_env["WORKER_WEB_PORT"]) in [p for _, p in seen["worker"]]
    for name in stack:
        assert seen[name], f"{name} (pid {stack[name]}) listens on nothing"
    exposed = {name: [s for s in socks if not _loopback(s[0])] for name, socks in seen.items()}
    assert exposed == {name: [] for name in ours}
