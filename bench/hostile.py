#!/usr/bin/env python3
"""bench/hostile.py: what hostile clients do to a gateway binary (bench/README.md, "Receiver").

    bench/hostile.py BIN

Starts BIN (memory spool, no Postgres) under a soft open-files limit of 1024 (the hard limit left as it
is, as many containers start), then runs the issue 12 scenarios one after the other, each from loopback addresses of
its own (127.0.1.x; the good client is 127.0.0.1):
  slowloris-http   1,100 connections trickling a request line and headers (~1 KB/s in all)
  slowloris-admin  70 such connections on the admin port
  idle-grpc        2,000 connections on the gRPC port that never send a byte
and, while each attack holds, times a good OTLP/HTTP request and /healthz (5 s timeout each, 5 tries).
Prints one line per scenario: how many good requests and probes succeeded, and their worst latency.
The attacks stay on this machine; nothing is sent elsewhere.
"""
import json, os, resource, socket, subprocess, sys, tempfile, threading, time, urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def timed(fn):
    t = time.time()
    try:
        ok = fn()
    except Exception:
        ok = False
    return ok, time.time() - t


def good_post(port):
    now = int(time.time() * 1e9)
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "chat",
        "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000)}]}]}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status == 200


def healthz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return r.status == 200


def attackers(port, n, head, drip):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((f"127.0.1.{i % 250 + 1}", 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            if head:
                s.sendall(head)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            s.close()
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for s in socks:
                try:
                    if drip:
                        s.send(b"a")
                except OSError:
                    pass
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    return socks, stop


def scenario(name, gw, port, n, head, drip):
    socks, stop = attackers(port, n, head, drip)
    time.sleep(1)
    posts = [timed(lambda: good_post(gw["http"])) for _ in range(5)]
    probes = [timed(lambda: healthz(gw["admin"])) for _ in range(5)]
    stop.set()
    for s in socks:
        s.close()
    ok_p = sum(1 for ok, _ in posts if ok)
    ok_h = sum(1 for ok, _ in probes if ok)
    print(f"{gw['label']:<12} {name:<16} attackers={len(socks):<5} good requests {ok_p}/5 "
          f"(worst {max(t for _, t in posts):.2f}s)  /healthz {ok_h}/5 (worst {max(t for _, t in probes):.2f}s)",
          flush=True)
    time.sleep(2)


def main():
    binary = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else os.path.basename(os.path.dirname(os.path.dirname(binary)))
    work = tempfile.mkdtemp(prefix="gw-hostile-")
    cfg = os.path.join(work, "gw.yaml")
    with open(cfg, "w") as f:
        f.write("log:\n  level: warn\nspool:\n  mode: memory\n")
    gw = {"grpc": free_port(), "http": free_port(), "admin": free_port(), "label": label}
    env = dict(os.environ, GENAI_GW_GRPC_ADDR=f"127.0.0.1:{gw['grpc']}", GENAI_GW_HTTP_ADDR=f"127.0.0.1:{gw['http']}",
               GENAI_GW_ADMIN_ADDR=f"127.0.0.1:{gw['admin']}")
    log = open(os.path.join(work, "gw.log"), "w")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc = subprocess.Popen(["prlimit", f"--nofile=1024:{hard}", "--", binary, "--config", cfg], env=env,
                            stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                if healthz(gw["admin"]):
                    break
            except Exception:
                time.sleep(0.1)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        slow = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: "
        scenario("slowloris-http", gw, gw["http"], 1100, slow, True)
        scenario("slowloris-admin", gw, gw["admin"], 70, b"GET /healthz HTTP/1.1\r\nX-Slow: ", True)
        scenario("idle-grpc", gw, gw["grpc"], 2000, None, False)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
