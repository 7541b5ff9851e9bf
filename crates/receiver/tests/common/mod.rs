//! A recording fake sink and a small hand-built OTLP request shared by the transport tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use skylark_core::segment::Segment;
use skylark_core::{IngestError, IngestReport, IngestSink, LogData, MetricBatch};
use skylark_receiver::{ReceiverConfig, ReceiverState};

/// Records every batch; answers `Busy` while `busy` is set.
#[derive(Default)]
pub struct RecordingSink {
    pub batches: Mutex<Vec<MetricBatch>>,
    pub logs: Mutex<Vec<Vec<LogData>>>,
    pub segments: Mutex<Vec<Vec<Segment>>>,
    pub busy: AtomicBool,
}

impl RecordingSink {
    pub fn count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl IngestSink for RecordingSink {
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(IngestError::Busy("queue full".to_owned()));
        }
        let accepted = batch
            .resources
            .iter()
            .flat_map(|r| r.values())
            .map(|f| f.samples.len() as u64)
            .sum();
        self.batches.lock().unwrap().push(batch);
        Ok(IngestReport {
            accepted,
            ..Default::default()
        })
    }

    async fn ingest_logs(&self, logs: Vec<LogData>) -> Result<IngestReport, IngestError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(IngestError::Busy("queue full".to_owned()));
        }
        let accepted = logs.len() as u64;
        self.logs.lock().unwrap().push(logs);
        Ok(IngestReport {
            accepted,
            ..Default::default()
        })
    }

    async fn ingest_segments(&self, segments: Vec<Segment>) -> Result<IngestReport, IngestError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(IngestError::Busy("queue full".to_owned()));
        }
        let accepted = segments.len() as u64;
        self.segments.lock().unwrap().push(segments);
        Ok(IngestReport {
            accepted,
            ..Default::default()
        })
    }
}

impl RecordingSink {
    /// Every log record received, across requests.
    pub fn all_logs(&self) -> Vec<LogData> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Every segment received, across requests.
    pub fn all_segments(&self) -> Vec<Segment> {
        self.segments
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }
}

pub fn state(sink: &Arc<RecordingSink>, max_body_bytes: usize) -> ReceiverState {
    ReceiverState::new(
        sink.clone(),
        ReceiverConfig {
            max_body_bytes,
            ..ReceiverConfig::default()
        },
    )
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    kv(key, value)
}

/// What the mini-program SDK sends to `/v1/logs`: two ERROR records of a WeChat app.
pub fn sdk_like_logs_request() -> ExportLogsServiceRequest {
    let record = |exception_type: &str, body: &str| LogRecord {
        time_unix_nano: 1_795_929_348_521_000_000,
        severity_number: 17,
        severity_text: "ERROR".to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.to_owned())),
        }),
        attributes: vec![
            string_kv("exception.type", exception_type),
            string_kv("miniprogram.page.path", "pages/index/index"),
        ],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "mini-program-sim-wechat"),
                    kv("service.instance.id", "sim-instance-1"),
                    kv("miniprogram.platform", "wechat"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record("js", "TypeError: x is undefined"),
                    record("promise", "network timeout"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One SDK-shaped segment in proto3 JSON, with the given ids and times.
pub fn segment_json(trace_id: &str, segment_id: &str, start: i64, end: i64) -> String {
    format!(
        r#"{{"traceId":"{trace_id}","traceSegmentId":"{segment_id}","service":"mini-program-sim-wechat","serviceInstance":"-","spans":[{{"operationName":"pages/index/index","startTime":{start},"endTime":{end},"spanId":0,"parentSpanId":-1,"spanLayer":"Http","spanType":"Exit","isError":false,"componentId":10002,"peer":"api.example.com","tags":[{{"key":"http.method","value":"GET"}},{{"key":"url","value":"https://api.example.com/users"}},{{"key":"http.status_code","value":"200"}},{{"key":"miniprogram.platform","value":"wechat"}}]}}]}}"#
    )
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// What the mini-program SDK sends: a gauge and a DELTA request histogram.
pub fn sdk_like_request() -> ExportMetricsServiceRequest {
    let gauge = Metric {
        name: "miniprogram.app_launch.duration".to_owned(),
        unit: "ms".to_owned(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("miniprogram.page.path", "pages/index/index")],
                time_unix_nano: 1_795_929_348_691_000_000,
                value: Some(number_data_point::Value::AsInt(1200)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "miniprogram.request.duration".to_owned(),
        unit: "ms".to_owned(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("http.response.status_code", "200"),
                ],
                time_unix_nano: 1_795_929_353_691_000_000,
                count: 2,
                sum: Some(130.0),
                bucket_counts: vec![0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                explicit_bounds: vec![
                    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                ],
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "mini-program-sim-wechat"),
                    kv("miniprogram.platform", "wechat"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![gauge, histogram],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
