#!/usr/bin/python3
"""unstorable.py: how long the Postgres writer takes to settle spans whose values no column can hold.

    bench/unstorable.py [--spans N] [--case tokens|session|ok] [--gateway BIN] DSN

Starts the gateway (memory spool, its own free ports, a fresh database `gw_unstorable` on the server of
DSN), posts N GenAI spans over OTLP/HTTP JSON in requests of 100, and prints the time from the first
request to the moment the writer has settled every one of them (stored + refused, read from /metrics
every 20 ms), then the rows and rejects in the database. Cases:
  tokens   gen_ai.usage.input_tokens = 3000000000 (above the int column)
  session  session.id of 3000 random bytes (above what a btree index entry holds)
  ok       plain spans, for comparison
Issue 11 item 4: before the writer checked rows against their columns, each such row cost a batch split.
Not a test: it prints figures. Needs psql on PATH.
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def psql(dsn, sql):
    out = subprocess.run(["psql", dsn, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def metric(admin, name):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def span(case, i, now_ns):
    attrs = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
    ]
    if case == "tokens":
        attrs.append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3000000000"}})
    else:
        attrs.append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}})
    if case == "session":
        sid = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
        attrs.append({"key": "session.id", "value": {"stringValue": sid}})
    return {
        "traceId": "%032x" % random.getrandbits(128),
        "spanId": "%016x" % (random.getrandbits(63) | 1),
        "name": "chat gpt-4o",
        "startTimeUnixNano": str(now_ns - 1_000_000_000 + i),
        "endTimeUnixNano": str(now_ns + i),
        "attributes": attrs,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsn")
    ap.add_argument("--spans", type=int, default=5000)
    ap.add_argument("--case", choices=["tokens", "session", "ok"], default="tokens")
    ap.add_argument("--gateway", default=os.path.join(REPO, "build", "genai-gateway"))
    a = ap.parse_args()

    base = a.dsn.rsplit("/", 1)[0]
    psql(a.dsn, "DROP DATABASE IF EXISTS gw_unstorable WITH (FORCE)")
    psql(a.dsn, "CREATE DATABASE gw_unstorable")
    dsn = base + "/gw_unstorable"
    http, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    tmp = tempfile.mkdtemp(prefix="gw-unstorable-")
    cfg = os.path.join(tmp, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(f"postgres:\n  migrations_dir: {REPO}/migrations\n")
    env = dict(os.environ, DATABASE_URL=dsn, GENAI_GW_HTTP_ADDR=http, GENAI_GW_GRPC_ADDR=f"127.0.0.1:{free_port()}",
               GENAI_GW_ADMIN_ADDR=admin, GENAI_GW_LOG_LEVEL="error", GENAI_GW_SPOOL_DIR=tmp)
    log = open(os.path.join(tmp, "gateway.log"), "w")
    gw = subprocess.Popen([a.gateway, "--config", cfg], env=env, stdout=log, stderr=log)
    try:
        for _ in range(500):
            try:
                if metric(admin, "genai_gateway_pg_connected") == 1:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        else:
            sys.exit("the gateway did not connect to Postgres: " + open(log.name).read()[-2000:])
        stored0 = metric(admin, "genai_gateway_records_stored_total")
        rejected0 = metric(admin, "genai_gateway_records_rejected_db_total")
        now_ns = time.time_ns()
        bodies = []
        for k in range(0, a.spans, 100):
            spans = [span(a.case, i, now_ns) for i in range(k, min(k + 100, a.spans))]
            bodies.append(json.dumps({"resourceSpans": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "unstorable"}}]},
                "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}).encode())
        t0 = time.monotonic()
        for b in bodies:
            req = urllib.request.Request(f"http://{http}/v1/traces", data=b,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        sent = time.monotonic() - t0
        while True:
            stored = metric(admin, "genai_gateway_records_stored_total") - stored0
            rejected = metric(admin, "genai_gateway_records_rejected_db_total") - rejected0
            if stored + rejected >= a.spans:
                break
            if time.monotonic() - t0 > 600:
                sys.exit(f"gave up after 600 s: {stored} stored, {rejected} refused")
            time.sleep(0.02)
        settled = time.monotonic() - t0
        print(f"case {a.case}: {a.spans} spans posted in {sent:.2f} s, settled by the writer in {settled:.2f} s "
              f"({stored} stored, {rejected} kept in ai_interaction_rejects)")
        print("  rows:", psql(dsn, "SELECT count(*), count(input_tokens), count(session_id) FROM ai_interaction_traces"),
              " rejects:", psql(dsn, "SELECT count(*) FROM ai_interaction_rejects"))
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        log.close()
        psql(a.dsn, "DROP DATABASE IF EXISTS gw_unstorable WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
