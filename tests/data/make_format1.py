#!/usr/bin/env python3
"""Writes the folder of tests/data/formatN.tar.gz with an older `skylark` (run from the repo root:
`python3 tests/data/make_format1.py OLD_SKYLARK OUT` then `tar -czf tests/data/formatN.tar.gz -C OUT db`):
metrics at fixed minutes and one log, then a clean shutdown. format1.tar.gz was written by commit
248d011 (before format 2), format3.tar.gz by commit 2c44793 (the last of format 3)."""
import json, os, signal, socket, subprocess, sys, time, http.client, shutil
binary, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True); os.makedirs(out)
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
rest, grpc = free(), free()
env = dict(os.environ, SW_CORE_REST_HOST="127.0.0.1", SW_CORE_REST_PORT=str(rest), SW_CORE_GRPC_HOST="127.0.0.1",
           SW_CORE_GRPC_PORT=str(grpc), SW_ADMIN_PORT="0", SW_STORAGE_SLED_PATH=os.path.join(out, "db"),
           SW_CORE_METRICS_DATA_TTL="36500", SW_CORE_RECORD_DATA_TTL="36500")
p = subprocess.Popen([binary], env=env, stderr=open(out + "/../server.log", "w"))
for _ in range(400):
    try:
        c = http.client.HTTPConnection("127.0.0.1", rest, timeout=2)
        c.request("POST", "/graphql", json.dumps({"query": "{ version }"}), {"Content-Type": "application/json"})
        if c.getresponse().status == 200: break
    except OSError: time.sleep(0.05)
res = {"attributes": [{"key": "service.name", "value": {"stringValue": "migration-sim"}},
                      {"key": "service.instance.id", "value": {"stringValue": "v1"}},
                      {"key": "service.version", "value": {"stringValue": "v1"}},
                      {"key": "miniprogram.platform", "value": {"stringValue": "wechat"}}]}
# 2026-12-06 07:00..07:02 UTC, app launch 100, 200, 300 ms (twice each minute: avg = the value)
base = 1796540400  # 2026-12-06T07:00:00Z
for m, v in enumerate([100, 200, 300]):
    for k in range(2):
        t = (base + m * 60 + 10 + k) * 10**9
        body = {"resourceMetrics": [{"resource": res, "scopeMetrics": [{"scope": {"name": "mini-program-monitor"}, "metrics": [
            {"name": "miniprogram.app_launch.duration", "unit": "ms", "gauge": {"dataPoints": [
                {"timeUnixNano": str(t), "asInt": str(v), "attributes": [{"key": "miniprogram.page.path", "value": {"stringValue": "pages/index/index"}}]}]}}]}]}]}
        c = http.client.HTTPConnection("127.0.0.1", rest, timeout=10)
        c.request("POST", "/v1/metrics", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse(); print("metrics", r.status, r.read()[:200])
logs = {"resourceLogs": [{"resource": res, "scopeLogs": [{"logRecords": [
    {"timeUnixNano": str((base + 90) * 10**9), "severityText": "ERROR", "body": {"stringValue": "migration log"},
     "attributes": [{"key": "exception.type", "value": {"stringValue": "js"}}]}]}]}]}
c = http.client.HTTPConnection("127.0.0.1", rest, timeout=10)
c.request("POST", "/v1/logs", json.dumps(logs), {"Content-Type": "application/json"})
r = c.getresponse(); print("logs", r.status, r.read()[:200])
p.send_signal(signal.SIGTERM); print("exit", p.wait(30))
