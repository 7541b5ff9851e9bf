#!/usr/bin/env python3
"""The data layer's scale benchmark (`make bench-scale`).

Starts a release `skylark` on a fresh data folder, loads it with `../shared/tools/scale_gen.py load`
(1,000 services x 5 versions x 20 pages, 30 simulated minutes of WeChat SDK metrics by default) and,
while that load runs, times the WeChat service dashboard's Overview tab (its ten expressions in one
aliased request, as the UI sends them). Then it stops the server, measures the data folder and times
a cold start on it with `scale_gen.py startup`.

Reports, in one run: peak RSS (VmHWM) of the server during the load, disk bytes per data point
sent, Overview-tab latency during ingest (p50 / p99 / max) and start-up time to the first GraphQL
answer. A benchmark, not a test: it prints figures and asserts nothing.

Usage: bench/scale.py BINARY SHARED_DIR [--services N --instances N --pages N --minutes N
                                          --max-memory-mb MB --out FILE.json]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def status_kib(pid, field):
    """A `Vm*` line of /proc/<pid>/status, in KiB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def wait_ready(port, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"skylark exited with {proc.returncode} before answering")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("POST", "/graphql", json.dumps({"query": "{ version }"}),
                      {"Content-Type": "application/json"})
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("skylark did not answer within the start-up timeout")


class OverviewProbe(threading.Thread):
    """Sends the Overview tab (one aliased request) in a loop until stopped; keeps the latencies."""

    def __init__(self, scale_gen, port, service, minutes):
        super().__init__(daemon=True)
        self.port, self.stop, self.latencies_ms, self.errors = port, threading.Event(), [], []
        # (UTC start time, ms) of each request, to line the slowest up with the server's log.
        self.timed = []
        self.doc = scale_gen.exec_doc(scale_gen.OVERVIEW)
        end = time.gmtime(time.time())
        start = time.gmtime(time.time() - 60 * minutes)
        fmt = "%Y-%m-%d %H%M"
        self.variables = {
            "entity": {"scope": "Service", "serviceName": service, "normal": True},
            "duration": {"start": time.strftime(fmt, start), "end": time.strftime(fmt, end),
                         "step": "MINUTE"},
        }
        self.scale_gen = scale_gen

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stop.is_set():
            t, wall = time.perf_counter(), time.time()
            try:
                self.scale_gen.gql(conn, self.doc, self.variables)
                ms = (time.perf_counter() - t) * 1000
                self.latencies_ms.append(ms)
                self.timed.append((wall, ms))
            except (OSError, RuntimeError, http.client.HTTPException, ValueError) as e:
                self.errors.append(str(e)[:200])
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.stop.wait(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("shared")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--max-memory-mb", type=int, default=256)
    ap.add_argument("--work", default="target/bench-scale")
    ap.add_argument("--out")
    a = ap.parse_args()

    tools = os.path.join(a.shared, "tools")
    if not os.path.exists(os.path.join(tools, "scale_gen.py")):
        sys.exit(f"{tools}/scale_gen.py not found: the scale benchmark needs ../shared")
    sys.path.insert(0, tools)
    import scale_gen  # noqa: E402  (read in place from ../shared)

    binary = os.path.abspath(a.binary)
    data = os.path.abspath(os.path.join(a.work, "data"))
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    log_path = os.path.abspath(os.path.join(a.work, "server.log"))
    rest, grpc = free_ports(2)
    env = dict(os.environ, SW_CORE_REST_HOST="127.0.0.1", SW_CORE_REST_PORT=str(rest),
               SW_CORE_GRPC_HOST="127.0.0.1", SW_CORE_GRPC_PORT=str(grpc), SW_ADMIN_PORT="0",
               SW_STORAGE_SLED_PATH=data, SW_CORE_MAX_MEMORY_MB=str(a.max_memory_mb))
    env.setdefault("SKYLARK_LOG", "warn")
    with open(log_path, "wb") as log:
        server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(rest, server)
        url = f"http://127.0.0.1:{rest}"
        load = subprocess.Popen(
            [sys.executable, os.path.join(tools, "scale_gen.py"), "load", url,
             "--services", str(a.services), "--instances", str(a.instances),
             "--pages", str(a.pages), "--minutes", str(a.minutes), "--threads", str(a.threads)],
            stdout=subprocess.PIPE, text=True)
        probe = OverviewProbe(scale_gen, rest, "mp-0001", a.minutes)
        load_stats, probing = None, False
        for line in load.stdout:
            line = line.strip()
            print(line, flush=True)
            if line.startswith("{"):
                load_stats = json.loads(line)
            elif line.startswith("minute ") and not probing:
                probing = True  # the first simulated minute is in: the tab has data to read
                probe.start()
        load.wait()
        if probing:
            probe.stop.set()
            probe.join()
        if load.returncode != 0 or load_stats is None:
            sys.exit(f"scale_gen.py load failed ({load.returncode})")
        peak_rss_kib = status_kib(server.pid, "VmHWM")
        rss_after_kib = status_kib(server.pid, "VmRSS")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    disk = dir_bytes(data)
    points = load_stats["requests"] * load_stats["points_per_request"]
    startup = subprocess.run(
        [sys.executable, os.path.join(tools, "scale_gen.py"), "startup", binary, data,
         "--runs", "3"], capture_output=True, text=True, env=env)
    starts = [json.loads(l)["first_version_answer_s"] for l in startup.stdout.splitlines()
              if l.startswith("{")]
    lat = probe.latencies_ms
    result = {
        "services": a.services, "instances": a.instances, "pages": a.pages,
        "minutes": a.minutes, "max_memory_mb": a.max_memory_mb,
        "requests": load_stats["requests"], "non2xx": load_stats["non2xx"],
        "load_seconds": load_stats["seconds"],
        "load_req_per_s": round(load_stats["requests"] / max(load_stats["seconds"], 0.001)),
        "points_sent": round(points), "peak_rss_mb": round((peak_rss_kib or 0) / 1024),
        "rss_after_load_mb": round((rss_after_kib or 0) / 1024),
        "disk_bytes": disk, "disk_bytes_per_point": round(disk / max(points, 1), 1),
        "overview_requests": len(lat), "overview_errors": len(probe.errors),
        "overview_p50_ms": round(pct(lat, 50), 1) if lat else None,
        "overview_p99_ms": round(pct(lat, 99), 1) if lat else None,
        "overview_max_ms": round(max(lat), 1) if lat else None,
        "overview_mean_ms": round(statistics.mean(lat), 1) if lat else None,
        "overview_slowest": [
            [time.strftime("%H:%M:%S", time.gmtime(w)) + f".{int(w * 1000) % 1000:03d}", round(ms, 1)]
            for w, ms in sorted(probe.timed, key=lambda x: -x[1])[:10]],
        "startup_s": starts, "startup_error": startup.stderr[-500:] if not starts else None,
    }
    if probe.errors:
        result["overview_first_error"] = probe.errors[0]
    print()
    print("| measurement | value | goal |")
    print("|---|---|---|")
    print(f"| load: requests / seconds / req/s / non-2xx | {result['requests']} / "
          f"{result['load_seconds']} / {result['load_req_per_s']} / {result['non2xx']} | |")
    print(f"| peak RSS (SW_CORE_MAX_MEMORY_MB={a.max_memory_mb}) | {result['peak_rss_mb']} MB "
          f"({result['rss_after_load_mb']} MB after the load) | <= 512 MB |")
    print(f"| disk / data points sent | {result['disk_bytes_per_point']} B "
          f"({disk / 1e6:.1f} MB / {result['points_sent']} points) | <= 40 B |")
    print(f"| Overview tab during ingest p50 / p99 / max ({len(lat)} requests, "
          f"{len(probe.errors)} errors) | {result['overview_p50_ms']} / {result['overview_p99_ms']}"
          f" / {result['overview_max_ms']} ms | max <= 250 ms |")
    print(f"| start-up to the first GraphQL answer (3 runs) | "
          f"{', '.join(f'{s} s' for s in starts) or 'failed'} | <= 0.5 s |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
