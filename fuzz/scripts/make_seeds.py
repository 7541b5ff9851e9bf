#!/usr/bin/env python3
"""Regenerates fuzz/seeds/ from Skylark's own files (rules, LAL config, UI templates) and a few
hand-written request bodies. Nothing here comes from ../shared; the SDK captures there are added
as extra read-only corpora at run time by the Makefile."""
import glob
import hashlib
import json
import os
import re
import shutil
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- protobuf, just enough to write OTLP requests by hand -------------------------------------
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def msg(num, body):
    return field(num, 2, varint(len(body)) + body)


def string(num, s):
    return msg(num, s.encode())


def u64(num, n):
    return field(num, 0, varint(n))


def fixed64(num, n):
    return field(num, 1, struct.pack("<Q", n))


def double(num, x):
    return field(num, 1, struct.pack("<d", x))


def packed_doubles(num, xs):
    return msg(num, b"".join(struct.pack("<d", x) for x in xs))


def packed_fixed64(num, xs):
    return msg(num, b"".join(struct.pack("<Q", x) for x in xs))


def kv(key, value):
    return string(1, key) + msg(2, string(1, value))


T = 1_777_593_600_000_000_000  # 2026-05-01T00:00:00Z in ns
RESOURCE = msg(1, kv("service.name", "mini-program-sim-wechat") + kv("service.instance.id", "inst-1")
               + kv("miniprogram.platform", "wechat"))
ATTRS = kv("miniprogram.page.path", "pages/index/index")


def number_point(value):
    return ATTRS + fixed64(3, T) + double(4, value)


def metric(name, data_field, data):
    return string(1, name) + string(3, "ms") + msg(data_field, data)


gauge = metric("miniprogram.app_launch.duration", 5, msg(1, number_point(123.5)))
summ = metric("miniprogram.request.count", 7, msg(1, number_point(3)) + u64(2, 1) + field(3, 0, varint(1)))
hist_point = (ATTRS + fixed64(3, T) + fixed64(4, 3) + double(5, 300.0)
              + packed_fixed64(6, [1, 1, 1, 0]) + packed_doubles(7, [50, 100, 500]))
hist = metric("miniprogram.request.duration", 9, msg(1, hist_point) + u64(2, 1))
exp_point = (ATTRS + fixed64(3, T) + fixed64(4, 4) + double(5, 10.0) + field(6, 0, varint(2))
             + msg(8, field(1, 0, varint(1)) + msg(2, varint(1) + varint(2) + varint(1))))
exph = metric("miniprogram.route.duration", 10, msg(1, exp_point) + u64(2, 1))
summary_point = (ATTRS + fixed64(3, T) + fixed64(4, 5) + double(5, 50.0)
                 + msg(6, double(1, 0.5) + double(2, 9.0)) + msg(6, double(1, 0.99) + double(2, 20.0)))
summary = metric("miniprogram.script.duration", 11, msg(1, summary_point))
scope = msg(2, msg(1, string(1, "mp-sdk")) + msg(2, gauge) + msg(2, summ) + msg(2, hist)
            + msg(2, exph) + msg(2, summary))
metrics_pb = msg(1, RESOURCE + scope)
put("otlp_metrics_protobuf", metrics_pb)
put("otlp_metrics_protobuf", msg(1, RESOURCE + msg(2, msg(2, gauge))))
put("otlp_metrics_protobuf", msg(1, RESOURCE + msg(2, msg(2, hist))))
put("otlp_metrics_protobuf", msg(1, RESOURCE + msg(2, msg(2, exph))))

log_record = (fixed64(1, T) + field(2, 0, varint(17)) + string(3, "ERROR")
              + msg(5, string(1, "TypeError: cannot read property 'x' of undefined"))
              + kv("exception.type", "TypeError") + kv("exception.stacktrace", "at a (app.js:1:2)")
              + msg(9, b"\x01" * 16) + msg(10, b"\x02" * 8))
logs_pb = msg(1, RESOURCE + msg(2, msg(1, string(1, "mp-sdk")) + msg(2, log_record)))
put("otlp_logs", logs_pb)

# --- OTLP JSON ----------------------------------------------------------------------------------
def jattrs(pairs):
    return [{"key": k, "value": {"stringValue": v}} for k, v in pairs]


J_RESOURCE = {"attributes": jattrs([("service.name", "mini-program-sim-alipay"),
                                    ("service.instance.id", "inst-2"),
                                    ("miniprogram.platform", "alipay")])}
J_ATTRS = jattrs([("miniprogram.page.path", "pages/cart/cart")])
TS = str(T)
metrics_json = {"resourceMetrics": [{"resource": J_RESOURCE, "scopeMetrics": [{"scope": {"name": "mp-sdk"}, "metrics": [
    {"name": "miniprogram.first_render.duration", "unit": "ms",
     "gauge": {"dataPoints": [{"attributes": J_ATTRS, "timeUnixNano": TS, "asDouble": 88.5}]}},
    {"name": "miniprogram.request.count",
     "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "isMonotonic": True,
             "dataPoints": [{"attributes": J_ATTRS, "timeUnixNano": TS, "asInt": "4"}]}},
    {"name": "miniprogram.request.duration", "unit": "ms",
     "histogram": {"aggregationTemporality": 1, "dataPoints": [
         {"attributes": J_ATTRS, "timeUnixNano": TS, "count": "3", "sum": 300,
          "bucketCounts": ["1", "1", "1", "0"], "explicitBounds": [50, 100, 500]}]}},
    {"name": "miniprogram.route.duration",
     "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
         {"attributes": J_ATTRS, "timeUnixNano": TS, "count": "4", "sum": 10, "scale": 2, "zeroCount": "0",
          "positive": {"offset": 1, "bucketCounts": ["1", "2", "1"]},
          "negative": {"offset": 0, "bucketCounts": []}}]}},
    {"name": "miniprogram.script.duration",
     "summary": {"dataPoints": [{"attributes": J_ATTRS, "timeUnixNano": TS, "count": "5", "sum": 50,
                                 "quantileValues": [{"quantile": 0.5, "value": 9}, {"quantile": 0.99, "value": 20}]}]}},
    {"name": "no.data"},
]}]}]}
put("otlp_metrics_json", json.dumps(metrics_json))
put("otlp_metrics_json", json.dumps(metrics_json, indent=1))
put("otlp_metrics_json", '{"resourceMetrics":[]}')

logs_json = {"resourceLogs": [{"resource": J_RESOURCE, "scopeLogs": [{"scope": {"name": "mp-sdk"}, "logRecords": [
    {"timeUnixNano": TS, "severityNumber": 17, "severityText": "ERROR",
     "body": {"stringValue": "request failed: 500"},
     "attributes": jattrs([("exception.type", "HttpError"), ("http.response.status_code", "500")])
     + [{"key": "retry", "value": {"intValue": "2"}}, {"key": "ok", "value": {"boolValue": False}},
        {"key": "ratio", "value": {"doubleValue": 0.5}},
        {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
        {"key": "raw", "value": {"bytesValue": "AQID"}}],
     "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"},
    {"body": {"kvlistValue": {"values": []}}, "attributes": jattrs([("a", "1"), ("a", "2")])},
]}]}]}
put("otlp_logs", json.dumps(logs_json))

# --- SkyWalking segments ----------------------------------------------------------------------
span = {"spanId": 0, "parentSpanId": -1, "startTime": 1777593600000, "endTime": 1777593600123,
        "operationName": "/api/user", "peer": "api.example.com", "spanType": "Exit", "spanLayer": "Http",
        "componentId": 10002, "isError": False,
        "tags": [{"key": "http.method", "value": "GET"}, {"key": "http.status_code", "value": "200"}],
        "logs": [{"time": "1777593600100", "data": [{"key": "event", "value": "error"}]}],
        "refs": [{"refType": "CrossProcess", "traceId": "t0", "parentTraceSegmentId": "s0",
                  "parentSpanId": 1, "parentService": "gw", "parentServiceInstance": "gw-1",
                  "parentEndpoint": "/", "networkAddressUsedAtPeer": "10.0.0.1:80"}]}
segment = {"traceId": "t1", "traceSegmentId": "s1", "service": "mini-program-sim-wechat",
           "serviceInstance": "-", "isSizeLimited": False, "spans": [span, dict(span, spanId=1, parentSpanId=0, spanType=1)]}
put("segments_json", json.dumps([segment]))
put("segments_json", json.dumps(segment))
put("segments_json", json.dumps([segment, {"traceId": 5}, {}]))

# --- MAL: our rule files' expressions and filters ---------------------------------------------
rule_files = sorted(glob.glob(os.path.join(ROOT, "otel-rules", "*", "*.yaml"))
                    + glob.glob(os.path.join(ROOT, "config", "log-mal-rules", "*.yaml")))
for path in rule_files:
    for line in open(path):
        m = re.match(r"\s*(?:- )?(?:exp|filter|expSuffix):\s*(.+)$", line)
        if m:
            text = m.group(1).strip()
            if text.startswith('"') and text.endswith('"'):
                text = text[1:-1]
            put("mal_parser", text)
for extra in [
    "(x * 100 + 1) / 2 - x.tagEqual('svc', 'a').sum(['svc'])",
    "x.tag({tags -> tags.k = 'v' + tags.svc; if (tags.k == 'a') { tags.z = 'b' } else { tags.z = 'c' }}).sum(['svc', 'k', 'z']).service(['svc'], Layer.GENERAL)",
    "x.filter({ tags -> tags.svc in ['a', 'b'] && !(tags.k != null) }).increase('PT1M').rate('PT5M').instance(['svc'], ['k'], Layer.GENERAL)",
    "x.valueEqual(0).tagNotMatch('k', 'v.*').irate().avg(['svc']).downsampling(LATEST).endpoint(['svc'], ['k'], Layer.GENERAL)",
    "-x.sum(['svc']).time().service(['svc'], Layer.GENERAL)",
]:
    put("mal_parser", extra)

# --- LAL: our rule files' scripts -------------------------------------------------------------
try:
    import yaml  # optional; falls back to a crude block reader
except ImportError:
    yaml = None
for path in sorted(glob.glob(os.path.join(ROOT, "config", "lal", "*.yaml"))):
    text = open(path).read()
    if yaml:
        for rule in yaml.safe_load(text).get("rules", []):
            put("lal_parser", rule["dsl"])
    else:
        for block in re.findall(r"dsl: \|\n((?:(?:      .*)?\n)+)", text):
            put("lal_parser", "\n".join(l[6:] for l in block.splitlines()))
put("lal_parser", """filter {
  json { abortOnFailure false }
  text { regexp "(?<method>\\\\w+) (?<path>\\\\S+) failed: (?<code>\\\\d+)" }
  extractor {
    service parsed.service as String
    timestamp parsed.time as Long
    traceId log.traceId
    tag 'code': parsed.code
    if (parsed?.nested?.a?.size() > 1 || tag("x") =~ /a.*/) { layer "GENERAL" }
  }
  sink {
    sampler { rateLimit("${log.service}:${parsed.code}") { rpm 600 } }
    enforcer {}
  }
}
""")

# --- MQE: every expression in our UI templates ------------------------------------------------
exprs = set()
for path in sorted(glob.glob(os.path.join(ROOT, "ui-templates", "*", "*.json"))):
    for m in re.finditer(r'"(?:expressions|metricConfig|subExpressions)"\s*:\s*\[([^\]]*)\]', open(path).read()):
        for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)):
            exprs.add(json.loads('"' + s + '"'))
for e in sorted(exprs):
    if e:
        put("mqe_parser", e)
for extra in [
    "top_n(meter_wechat_mp_request_cpm, 10, des, attr0='WECHAT_MINI_PROGRAM')",
    "aggregate_labels(meter_wechat_mp_error_count{exception_type='TypeError|HttpError'}, sum(exception_type))",
    "relabels(meter_wechat_mp_request_duration_percentile{p='50,99'}, p='50,99', percentile='P50,P99')",
    "round(avg(meter_wechat_mp_app_launch_duration) / 1000 * 100, 2) > 1 && 1 == 1",
    "increase(meter_wechat_mp_request_cpm, 2) + rate(meter_wechat_mp_request_cpm, 1) - abs(-1)",
    "sort_values(sort_label_values(meter_a{l='x'}, asc, l), 3, asc, max(l))",
    "trend(meter_x, 2) view_as_seq([meter_a, meter_b]) is_present(meter_a) baseline(meter_a, value)",
]:
    put("mqe_parser", extra)

# --- GraphQL: documents our tests send, each with variables after a NUL -----------------------
duration = {"start": "2026-05-01 0000", "end": "2026-05-01 0030", "step": "MINUTE"}
entity = {"serviceName": "mini-program-sim-wechat", "normal": True, "scope": "Service"}
docs = [
    ("query { result: version }", {}),
    ("query ($d: Duration!, $layer: String) { t: getGlobalTopology(duration: $d, layer: $layer) { nodes { id name type isReal layers } calls { id source sourceComponents target targetComponents detectPoints } debuggingTrace { traceId } } }",
     {"d": duration, "layer": "WECHAT_MINI_PROGRAM"}),
    ("query ($condition: TraceQueryCondition) { data: queryBasicTraces(condition: $condition) { traces { key: segmentId endpointNames duration start isError traceIds } debuggingTrace { traceId } } }",
     {"condition": {"queryDuration": duration, "traceState": "ALL", "queryOrder": "BY_DURATION", "paging": {"pageNum": 1, "pageSize": 20}}}),
    ("query ($condition: LogQueryCondition) { r: queryLogs(condition: $condition) { errorReason debuggingTrace { traceId } logs { serviceName serviceId serviceInstanceName serviceInstanceId endpointName endpointId traceId timestamp contentType content tags { key value } } } }",
     {"condition": {"queryDuration": duration, "paging": {"pageNum": 1, "pageSize": 10}, "tags": [{"key": "level", "value": "ERROR"}]}}),
    ("query ($e: Entity!, $d: Duration!) { r: execExpression(expression: \"avg(meter_wechat_mp_app_launch_duration) * 2\", entity: $e, duration: $d) { type error results { metric { labels { key value } } values { id value traceID } } } }",
     {"e": entity, "d": duration}),
    ("query ($layer: String!) { s: listServices(layer: $layer) { id name group shortName layers normal } l: listLayers }",
     {"layer": "WECHAT_MINI_PROGRAM"}),
    ("query ($id: ID!, $d: Duration!) { i: listInstances(duration: $d, serviceId: $id) { id name language instanceUUID attributes { name value } } e: findEndpoint(serviceId: $id, keyword: \"pages\", limit: 20) { id name } }",
     {"id": "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1", "d": duration}),
    ("{ getMenuItems { name icon path } getAllTemplates { id configuration } getTemplate(id: \"x\") { id } getTimeInfo { timezone currentTimestamp } getMetricsTTL { minute hour day } getRecordsTTL { normal trace } healthCheck { score details } hasQueryTracesV2Support }", {}),
    ("mutation ($id: String!) { disableTemplate(id: $id) { id status message } }", {"id": "x"}),
    ('{ __type(name: "Query") { fields { name args { name type { name kind ofType { name } } } } } }', {}),
    ("query { __schema { types { name kind } } }", {}),
]
for doc, variables in docs:
    put("graphql_document", doc.encode() + b"\0" + json.dumps(variables).encode())
    put("graphql_document", doc)
