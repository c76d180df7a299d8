#!/usr/bin/env python3
"""Soak test of `seed serve`: many streaming clients for a bounded time, a third of
them hanging up at random points, one client that reads a byte a second; then the
server must be back where it started.

Starts the release binary on 127.0.0.1 (a free port), talks only to it, and stops it
at the end whatever happens. Checks, after the clients stop:
  - seed_kv_blocks_used is 0 and seed_requests_running / _waiting are 0;
  - every request that was not abandoned finished with HTTP 200 and [DONE];
  - the slow reader did not hold the others up: it connects after the first
    --slow-after of the run, and the median time to first token of the requests
    started while it was connected stays under --ttft-limit seconds (the median
    before it connected is reported beside it);
  - resident memory after the run is within --rss-slack MiB of its value after
    warm-up.
Exit status 0 when all hold; the figures are printed as JSON.

Usage: scripts/soak.py [--minutes 10] [--clients 16] [--binary target/release/seed]
"""
import argparse, http.client, json, os, random, re, socket, subprocess, sys, tempfile, threading, time

PROMPTS = ["Tell me about the sea.", "Explain how bees make honey.", "Write a short story about a fox.",
           "What is a black hole?", "List five fruits and describe each.", "How do airplanes fly?",
           "Describe a day in Rome.", "Why is the sky blue?"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    page = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in page.splitlines():
        m = re.match(r"^(seed_[a-z_]+) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stream(port, prompt, max_tokens, hang_up_after=None, timeout=120):
    """One streamed chat request; returns a dict of what happened."""
    body = json.dumps({"model": "any", "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": max_tokens, "temperature": 0.7, "stream": True})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return {"status": r.status, "ok": False}
        ttft, chunks, done = None, 0, False
        while True:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                if line.strip() == b"data: [DONE]":
                    done = True
                    break
                chunks += 1
                if ttft is None:
                    # The first chunk that carries text (the first one only names the role).
                    try:
                        delta = json.loads(line[6:])["choices"][0].get("delta", {})
                    except (ValueError, KeyError, IndexError):
                        delta = {}
                    if delta.get("content"):
                        ttft = time.perf_counter() - t0
                if hang_up_after is not None and chunks >= hang_up_after:
                    return {"status": 200, "ok": True, "abandoned": True, "ttft": ttft}
        return {"status": 200, "ok": done, "abandoned": False, "ttft": ttft, "chunks": chunks}
    except Exception as e:  # a failure to count, not to crash the soak
        return {"status": None, "ok": False, "error": repr(e)}
    finally:
        c.close()


def slow_reader(port, stop, out):
    """Reads a streamed answer one byte a second until told to stop."""
    body = json.dumps({"model": "any", "messages": [{"role": "user", "content": "Write a long essay."}],
                       "max_tokens": 512, "stream": True})
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    s.sendall(req)
    n = 0
    while not stop.is_set():
        b = s.recv(1)
        if not b:
            break
        n += 1
        time.sleep(1.0)
    s.close()
    out["bytes_read"] = n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--binary", default="target/release/seed")
    ap.add_argument("--ttft-limit", type=float, default=10.0)
    ap.add_argument("--rss-slack", type=float, default=64.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--slow-after", type=float, default=0.2, help="fraction of the run before the slow reader connects")
    ap.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "seed-soak-server.log"),
                    help="the server's stderr")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    port = free_port()
    # The server's log goes to a file: a pipe nobody reads would fill and block it.
    log = open(args.log, "w")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port), "--alias", "any", "-t", "2"],
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            print("server did not become ready", file=sys.stderr)
            return 2
        # Warm-up: one request per prompt, then the baseline memory.
        for p in PROMPTS:
            stream(port, p, args.max_tokens)
        rss_warm = rss_mib(server.pid)

        stop = threading.Event()
        lock = threading.Lock()
        results = []
        slow = {}
        slow_connected = threading.Event()

        def start_slow_reader():
            if stop.wait(args.minutes * 60 * args.slow_after):
                return
            slow_connected.set()
            slow_reader(port, stop, slow)

        slow_thread = threading.Thread(target=start_slow_reader, daemon=True)
        slow_thread.start()
        deadline = time.monotonic() + args.minutes * 60

        def client(i):
            r = random.Random(args.seed * 1000 + i)
            while time.monotonic() < deadline:
                hang = r.randint(1, args.max_tokens) if r.random() < 1 / 3 else None
                during_slow = slow_connected.is_set()
                res = stream(port, r.choice(PROMPTS), args.max_tokens, hang_up_after=hang)
                res["slow_reader_connected"] = during_slow
                with lock:
                    results.append(res)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        rss_samples = []
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            rss_samples.append(round(rss_mib(server.pid), 1))
        stop.set()
        slow_thread.join(timeout=5)
        # Give the engine a moment to notice the last hang-ups.
        m = {}
        for _ in range(40):
            m = metrics(port)
            if m.get("seed_kv_blocks_used") == 0 and m.get("seed_requests_running") == 0:
                break
            time.sleep(0.25)
        rss_end = rss_mib(server.pid)
        completed = [r for r in results if r.get("ok") and not r.get("abandoned")]
        abandoned = [r for r in results if r.get("abandoned")]
        failed = [r for r in results if not r.get("ok")]
        def median_ttft_of(rs):
            ttfts = sorted(r["ttft"] for r in rs if r.get("ttft") is not None)
            return ttfts[len(ttfts) // 2] if ttfts else float("nan")

        median_ttft = median_ttft_of([r for r in results if r.get("slow_reader_connected")])
        median_ttft_before = median_ttft_of([r for r in results if not r.get("slow_reader_connected")])
        report = {
            "minutes": args.minutes, "clients": args.clients, "requests": len(results),
            "completed": len(completed), "abandoned": len(abandoned), "failed": len(failed),
            "failures": failed[:5],
            "median_ttft_s_before_slow_reader": round(median_ttft_before, 3),
            "median_ttft_s_with_slow_reader": round(median_ttft, 3),
            "slow_reader_bytes": slow.get("bytes_read"),
            "kv_blocks_used_after": m.get("seed_kv_blocks_used"),
            "requests_running_after": m.get("seed_requests_running"),
            "requests_waiting_after": m.get("seed_requests_waiting"),
            "generation_tokens_total": m.get("seed_generation_tokens_total"),
            "rss_mib_after_warmup": round(rss_warm, 1), "rss_mib_end": round(rss_end, 1),
            "rss_mib_max_during": max(rss_samples) if rss_samples else None,
        }
        print(json.dumps(report, indent=1))
        checks = [
            ("KV blocks return to zero", m.get("seed_kv_blocks_used") == 0),
            ("no request left running or waiting",
             m.get("seed_requests_running") == 0 and m.get("seed_requests_waiting") == 0),
            ("no request failed", not failed),
            ("some requests were abandoned mid-stream", len(abandoned) > 0),
            ("the slow reader did not hold others up", median_ttft < args.ttft_limit),
            ("memory flat after warm-up", rss_end - rss_warm <= args.rss_slack),
        ]
        for what, ok in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {what}")
        return 0 if all(ok for _, ok in checks) else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
