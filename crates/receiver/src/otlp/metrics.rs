//! OTLP metrics → MAL samples, exactly as OAP's `OpenTelemetryMetricRequestProcessor` and
//! `PrometheusMetricConverter` do it (oap-semantics §1), with three deliberate deviations that
//! turn OAP's request-aborting exceptions into per-point skips:
//!
//! 1. a `Metric` without a data oneof is skipped (OAP throws "Unsupported type" and fails the
//!    rest of the request);
//! 2. a histogram point whose `bucket_counts` is shorter than `explicit_bounds + 1`, and an
//!    exponential histogram point without positive buckets, is skipped (OAP throws an index
//!    error);
//! 3. NaN **and ±Infinity** values are dropped (OAP drops only NaN; infinities would poison the
//!    long conversion and averages downstream);
//! 4. values a stored long cannot hold are dropped instead of wrapping (OAP's long arithmetic
//!    turns a histogram count of `u64::MAX` into a negative call count): a number of magnitude
//!    2^63 or more, and a histogram or summary point whose count or any bucket count is above
//!    `i64::MAX`;
//! 5. a negative duration (a metric named `*.duration`: a gauge value, or a histogram or summary
//!    sum) is dropped; OAP stores it as 0 and averages it in. Other metrics may be negative.
//!
//! A histogram, exponential histogram or summary point is kept or dropped whole, so its
//! `_count`, `_sum` and buckets never disagree.
//!
//! Every skip is counted in [`MetricBatch::skipped_points`] and, by reason, in
//! [`MetricBatch::skip_reasons`], together with points OAP also drops (`FLAG_NO_RECORDED_VALUE`,
//! UNSPECIFIED-temporality sums).
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets as OtlpExponentialBuckets, metric::Data as OtlpData,
    number_data_point::Value as OtlpNumberValue, AggregationTemporality as OtlpTemporality,
    DataPointFlags as OtlpDataPointFlags, ExponentialHistogramDataPoint, HistogramDataPoint,
    Metric as OtlpMetric, NumberDataPoint, ResourceMetrics, SummaryDataPoint,
};
use skylark_core::{
    LabelText, Labels, MetricBatch, RejectReason, Rejections, Sample, SampleFamilies,
};

use super::attributes::{merged_labels, resource_labels};
use super::double_format::java_double_text;
use super::OtlpEncoding;
use crate::Result;

/// Label OAP puts the bucket upper bound in.
const LE_LABEL: &str = "le";
/// Label OAP puts a summary quantile in.
const QUANTILE_LABEL: &str = "quantile";
/// Escaped metric names ending in this measure durations, which are never negative
/// (`miniprogram.request.duration`, `miniprogram.app_launch.duration`, ...; sdk-signals §3).
const DURATION_SUFFIX: &str = "_duration";
/// 2^63: the smallest magnitude a stored long (`i64`) cannot hold.
const LONG_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Decodes an (already decompressed) OTLP/HTTP metrics body and converts it.
///
/// `content_type` is the request's `Content-Type` (`application/x-protobuf`,
/// `application/protobuf` or `application/json`, parameters allowed).
pub fn decode_metrics(content_type: &str, body: &[u8]) -> Result<MetricBatch> {
    let encoding = OtlpEncoding::from_content_type(content_type)?;
    let request: ExportMetricsServiceRequest = encoding.decode(body)?;
    Ok(convert_metrics_request(&request))
}

/// Converts a decoded OTLP metrics request: one [`SampleFamilies`] per `ResourceMetrics`, in
/// request order. Never fails: what OAP would reject is skipped and counted (module docs).
pub fn convert_metrics_request(request: &ExportMetricsServiceRequest) -> MetricBatch {
    let mut batch = MetricBatch::default();
    for resource_metrics in &request.resource_metrics {
        let mut builder = FamiliesBuilder::default();
        builder.add_resource_metrics(resource_metrics);
        batch.skipped_points += builder.skipped.total();
        batch.skip_reasons.merge(&builder.skipped);
        batch.resources.push(builder.families);
    }
    batch
}

/// `miniprogram.request.duration` → `miniprogram_request_duration`.
fn escape_metric_name(name: &str) -> String {
    name.replace(['.', '/'], "_")
}

/// OTLP timestamps are ns; samples carry ms (integer division, as OAP).
fn timestamp_ms(time_unix_nano: u64) -> i64 {
    // u64::MAX / 1e6 fits in i64, so this never truncates.
    (time_unix_nano / 1_000_000) as i64
}

/// Why a number cannot be stored as it is: not finite, too large for a long, or a negative
/// duration.
fn value_problem(value: f64, is_duration: bool) -> Option<RejectReason> {
    if !value.is_finite() {
        Some(RejectReason::NonFiniteValue)
    } else if value.abs() >= LONG_LIMIT {
        Some(RejectReason::ValueOverflow)
    } else if is_duration && value < 0.0 {
        Some(RejectReason::NegativeDuration)
    } else {
        None
    }
}

/// Why a histogram or summary point cannot be stored: a count or a sum that [`value_problem`]
/// refuses. Counts are judged as the samples they become (`f64`), so a point is refused whole
/// rather than losing single buckets later (`i64::MAX` itself rounds up to 2^63).
fn point_problem(
    counts: impl IntoIterator<Item = u64>,
    sum: f64,
    is_duration: bool,
) -> Option<RejectReason> {
    if counts.into_iter().any(|c| c as f64 >= LONG_LIMIT) {
        return Some(RejectReason::ValueOverflow);
    }
    value_problem(sum, is_duration)
}

fn has_no_recorded_value(flags: u32) -> bool {
    flags & (OtlpDataPointFlags::NoRecordedValueMask as u32) != 0
}

/// OAP uses `as_double` when set, otherwise `as_int` (0 when neither is set).
fn number_value(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(OtlpNumberValue::AsDouble(d)) => d,
        Some(OtlpNumberValue::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// Sets `le`/`quantile` keyed values the way OAP's `HashMap<Double, _>` does: a repeated key
/// overwrites the earlier value in place. Keys compare by their Java string, which is equivalent
/// to `Double.equals`.
fn upsert_keyed(entries: &mut Vec<(LabelText, f64)>, key: f64, value: f64) {
    let key = java_double_text(key);
    match entries.iter_mut().find(|(k, _)| **k == *key) {
        Some(entry) => entry.1 = value,
        None => entries.push((key, value)),
    }
}

/// Outcome of turning an exponential histogram point into explicit buckets.
enum ExponentialBuckets {
    /// `(upper bound, count)` pairs, ascending.
    Buckets(Vec<(f64, u64)>),
    /// OAP's "out-of-range" rejection: the point keeps its `_count`/`_sum` but has no buckets.
    OutOfRange,
    /// No positive buckets: OAP would throw; we skip the point.
    NoPositiveBuckets,
}

/// OAP's `buildBuckets` for exponential histograms (oap-semantics §1.4): base = 2^(2^-scale);
/// negative bucket i → `-(base^(offset+i))`; positive bucket i → `base^(offset+i+1)` except the
/// last, which becomes `+Inf`; `zero_count` is ignored.
fn exponential_buckets(point: &ExponentialHistogramDataPoint) -> ExponentialBuckets {
    let empty = OtlpExponentialBuckets::default();
    let positive = point.positive.as_ref().unwrap_or(&empty);
    let negative = point.negative.as_ref().unwrap_or(&empty);
    let base = 2f64.powf(2f64.powf(-f64::from(point.scale)));
    if base.is_infinite() {
        return ExponentialBuckets::OutOfRange;
    }
    let mut buckets =
        Vec::with_capacity(negative.bucket_counts.len() + positive.bucket_counts.len());
    for (i, count) in negative.bucket_counts.iter().enumerate() {
        let upper = -base.powf(f64::from(negative.offset) + i as f64);
        if upper == f64::NEG_INFINITY {
            return ExponentialBuckets::OutOfRange;
        }
        buckets.push((upper, *count));
    }
    let Some((last, finite)) = positive.bucket_counts.split_last() else {
        return ExponentialBuckets::NoPositiveBuckets;
    };
    for (i, count) in finite.iter().enumerate() {
        let upper = base.powf(f64::from(positive.offset) + i as f64 + 1.0);
        if upper == f64::INFINITY {
            return ExponentialBuckets::OutOfRange;
        }
        buckets.push((upper, *count));
    }
    buckets.push((f64::INFINITY, *last));
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    ExponentialBuckets::Buckets(buckets)
}

/// Collects the sample families of one `ResourceMetrics`.
#[derive(Default)]
struct FamiliesBuilder {
    families: SampleFamilies,
    skipped: Rejections,
}

impl FamiliesBuilder {
    fn add_resource_metrics(&mut self, resource_metrics: &ResourceMetrics) {
        let resource = resource_labels(
            resource_metrics
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default(),
        );
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                self.add_metric(&resource, metric);
            }
        }
    }

    fn skip(&mut self, reason: RejectReason, points: u64) {
        self.skipped.add(reason, points);
    }

    /// Appends a sample; NaN, ±Infinity and values beyond a long are dropped (deviations 3 and
    /// 4). Families are only created by a kept sample, so no empty family is ever produced.
    fn push(&mut self, name: &str, labels: Labels, value: f64, timestamp_ms: i64) {
        if let Some(reason) = value_problem(value, false) {
            self.skip(reason, 1);
            return;
        }
        match self.families.get_mut(name) {
            Some(family) => {
                // The family's samples share one name.
                let name = match family.samples.first() {
                    Some(s) => s.name.clone(),
                    None => LabelText::from(name),
                };
                family.samples.push(Sample {
                    name,
                    labels,
                    value,
                    timestamp_ms,
                });
            }
            None => {
                let sample = Sample {
                    name: LabelText::from(name),
                    labels,
                    value,
                    timestamp_ms,
                };
                self.families.insert(
                    name.to_owned(),
                    skylark_core::SampleFamily::new(vec![sample]),
                );
            }
        }
    }

    fn add_metric(&mut self, resource: &Labels, metric: &OtlpMetric) {
        let name = escape_metric_name(&metric.name);
        match &metric.data {
            Some(OtlpData::Gauge(gauge)) => self.add_numbers(resource, &name, &gauge.data_points),
            Some(OtlpData::Sum(sum)) => {
                // DELTA is a gauge; CUMULATIVE (monotonic or not) keeps its value as-is (the
                // counter/gauge distinction only matters to MAL's rate functions, which read the
                // values the same way). Unknown enum values count as cumulative, as protobuf-java
                // maps them to UNRECOGNIZED, which OAP treats like CUMULATIVE.
                if sum.aggregation_temporality == OtlpTemporality::Unspecified as i32 {
                    tracing::debug!(metric = %metric.name, "dropping sum with unspecified temporality");
                    self.skip(RejectReason::Malformed, sum.data_points.len() as u64);
                    return;
                }
                self.add_numbers(resource, &name, &sum.data_points);
            }
            Some(OtlpData::Histogram(histogram)) => {
                for point in &histogram.data_points {
                    self.add_histogram_point(resource, &name, point);
                }
            }
            Some(OtlpData::ExponentialHistogram(histogram)) => {
                for point in &histogram.data_points {
                    self.add_exponential_histogram_point(resource, &name, point);
                }
            }
            Some(OtlpData::Summary(summary)) => {
                for point in &summary.data_points {
                    self.add_summary_point(resource, &name, point);
                }
            }
            None => {
                // Deviation 1: OAP fails the request here.
                tracing::debug!(metric = %metric.name, "skipping metric without a data type");
                self.skip(RejectReason::Malformed, 1);
            }
        }
    }

    fn add_numbers(&mut self, resource: &Labels, name: &str, points: &[NumberDataPoint]) {
        let is_duration = name.ends_with(DURATION_SUFFIX);
        for point in points {
            if has_no_recorded_value(point.flags) {
                self.skip(RejectReason::NoRecordedValue, 1);
                continue;
            }
            let value = number_value(point);
            if let Some(reason) = value_problem(value, is_duration) {
                tracing::debug!(
                    metric = name,
                    value,
                    reason = reason.as_str(),
                    "skipping data point"
                );
                self.skip(reason, 1);
                continue;
            }
            let labels = merged_labels(resource, &point.attributes);
            self.push(name, labels, value, timestamp_ms(point.time_unix_nano));
        }
    }

    /// `<name>_count`, `<name>_sum`, then one `<name>{le=..}` per bucket in bound order.
    fn add_bucketed(
        &mut self,
        name: &str,
        labels: Labels,
        count: u64,
        sum: f64,
        buckets: &[(LabelText, f64)],
        timestamp_ms: i64,
    ) {
        self.push(
            &format!("{name}_count"),
            labels.clone(),
            count as f64,
            timestamp_ms,
        );
        self.push(&format!("{name}_sum"), labels.clone(), sum, timestamp_ms);
        let le_key = LabelText::from(LE_LABEL);
        for (le, value) in buckets {
            let mut bucket_labels = labels.clone();
            bucket_labels.insert(le_key.clone(), le.clone());
            self.push(name, bucket_labels, *value, timestamp_ms);
        }
    }

    fn add_histogram_point(&mut self, resource: &Labels, name: &str, point: &HistogramDataPoint) {
        if has_no_recorded_value(point.flags) {
            self.skip(RejectReason::NoRecordedValue, 1);
            return;
        }
        let counts = point.bucket_counts.iter().copied().chain([point.count]);
        let sum = point.sum.unwrap_or(0.0);
        if let Some(reason) = point_problem(counts, sum, name.ends_with(DURATION_SUFFIX)) {
            tracing::debug!(
                metric = name,
                reason = reason.as_str(),
                "skipping histogram point"
            );
            self.skip(reason, 1);
            return;
        }
        let bounds = &point.explicit_bounds;
        let Some(overflow_count) = point.bucket_counts.get(bounds.len()) else {
            // Deviation 2: OAP throws on the missing bucket.
            tracing::debug!(
                metric = name,
                bounds = bounds.len(),
                bucket_counts = point.bucket_counts.len(),
                "skipping histogram point with too few bucket counts"
            );
            self.skip(RejectReason::Malformed, 1);
            return;
        };
        // Values are OTLP's per-bucket counts, not cumulative ones: MAL's `histogram()` on the
        // OTLP path expects exactly that.
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        for (bound, count) in bounds.iter().zip(&point.bucket_counts) {
            upsert_keyed(&mut buckets, *bound, *count as f64);
        }
        upsert_keyed(&mut buckets, f64::INFINITY, *overflow_count as f64);
        let labels = merged_labels(resource, &point.attributes);
        self.add_bucketed(
            name,
            labels,
            point.count,
            point.sum.unwrap_or(0.0),
            &buckets,
            timestamp_ms(point.time_unix_nano),
        );
    }

    fn add_exponential_histogram_point(
        &mut self,
        resource: &Labels,
        name: &str,
        point: &ExponentialHistogramDataPoint,
    ) {
        if has_no_recorded_value(point.flags) {
            self.skip(RejectReason::NoRecordedValue, 1);
            return;
        }
        let empty = OtlpExponentialBuckets::default();
        let counts = [&point.positive, &point.negative]
            .into_iter()
            .flat_map(|b| b.as_ref().unwrap_or(&empty).bucket_counts.iter().copied())
            .chain([point.count]);
        let sum = point.sum.unwrap_or(0.0);
        if let Some(reason) = point_problem(counts, sum, name.ends_with(DURATION_SUFFIX)) {
            tracing::debug!(
                metric = name,
                reason = reason.as_str(),
                "skipping exponential histogram point"
            );
            self.skip(reason, 1);
            return;
        }
        let mut buckets = Vec::new();
        match exponential_buckets(point) {
            ExponentialBuckets::Buckets(explicit) => {
                for (bound, count) in explicit {
                    upsert_keyed(&mut buckets, bound, count as f64);
                }
            }
            ExponentialBuckets::OutOfRange => {
                tracing::debug!(
                    metric = name,
                    scale = point.scale,
                    "exponential histogram out of range, keeping only count and sum"
                );
            }
            ExponentialBuckets::NoPositiveBuckets => {
                // Deviation 2: OAP throws on the missing last positive bucket.
                tracing::debug!(
                    metric = name,
                    "skipping exponential histogram point without positive buckets"
                );
                self.skip(RejectReason::Malformed, 1);
                return;
            }
        }
        let labels = merged_labels(resource, &point.attributes);
        self.add_bucketed(
            name,
            labels,
            point.count,
            point.sum.unwrap_or(0.0),
            &buckets,
            timestamp_ms(point.time_unix_nano),
        );
    }

    /// `<name>_count`, `<name>_sum`, then one `<name>{quantile=..}` per quantile.
    fn add_summary_point(&mut self, resource: &Labels, name: &str, point: &SummaryDataPoint) {
        if has_no_recorded_value(point.flags) {
            self.skip(RejectReason::NoRecordedValue, 1);
            return;
        }
        let is_duration = name.ends_with(DURATION_SUFFIX);
        let problem = point_problem([point.count], point.sum, is_duration).or_else(|| {
            point
                .quantile_values
                .iter()
                .find_map(|q| value_problem(q.value, is_duration))
        });
        if let Some(reason) = problem {
            tracing::debug!(
                metric = name,
                reason = reason.as_str(),
                "skipping summary point"
            );
            self.skip(reason, 1);
            return;
        }
        let labels = merged_labels(resource, &point.attributes);
        let timestamp_ms = timestamp_ms(point.time_unix_nano);
        self.push(
            &format!("{name}_count"),
            labels.clone(),
            point.count as f64,
            timestamp_ms,
        );
        self.push(
            &format!("{name}_sum"),
            labels.clone(),
            point.sum,
            timestamp_ms,
        );
        let mut quantiles = Vec::with_capacity(point.quantile_values.len());
        for quantile in &point.quantile_values {
            upsert_keyed(&mut quantiles, quantile.quantile, quantile.value);
        }
        for (quantile, value) in quantiles {
            let mut quantile_labels = labels.clone();
            quantile_labels.insert(QUANTILE_LABEL, quantile);
            self.push(name, quantile_labels, value, timestamp_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value as V, AnyValue, ArrayValue, KeyValue,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        summary_data_point::ValueAtQuantile, ExponentialHistogram, Gauge, Histogram, ScopeMetrics,
        Sum, Summary,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: V) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(value: &str) -> V {
        V::StringValue(value.to_owned())
    }

    fn request(resource: Vec<KeyValue>, metrics: Vec<OtlpMetric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn metric(name: &str, data: OtlpData) -> OtlpMetric {
        OtlpMetric {
            name: name.to_owned(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn int_point(value: i64, time_unix_nano: u64, attributes: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            time_unix_nano,
            value: Some(OtlpNumberValue::AsInt(value)),
            ..Default::default()
        }
    }

    fn double_point(value: f64) -> NumberDataPoint {
        NumberDataPoint {
            time_unix_nano: 1_000_000_000,
            value: Some(OtlpNumberValue::AsDouble(value)),
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: Vec<NumberDataPoint>) -> OtlpMetric {
        metric(
            name,
            OtlpData::Gauge(Gauge {
                data_points: points,
            }),
        )
    }

    fn sum(name: &str, temporality: OtlpTemporality, monotonic: bool) -> OtlpMetric {
        metric(
            name,
            OtlpData::Sum(Sum {
                data_points: vec![double_point(5.0)],
                aggregation_temporality: temporality as i32,
                is_monotonic: monotonic,
            }),
        )
    }

    fn convert_one(request: &ExportMetricsServiceRequest) -> (SampleFamilies, u64) {
        let mut batch = convert_metrics_request(request);
        assert_eq!(batch.resources.len(), 1);
        (batch.resources.remove(0), batch.skipped_points)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn gauge_labels_escape_dots_copy_fallbacks_and_points_override() {
        let req = request(
            vec![
                kv("service.name", s("shop")),
                kv("service.instance.id", s("i-1")),
                kv("host.name", s("h1")),
                kv("net.host.name", s("h2")),
                kv("miniprogram.platform", s("wechat")),
                kv("odd/key-x", s("kept")),
            ],
            vec![gauge(
                "miniprogram.app_launch.duration",
                vec![int_point(
                    1200,
                    1_795_929_348_691_999_999,
                    vec![
                        kv("miniprogram.page.path", s("pages/index/index")),
                        kv("miniprogram.platform", s("alipay")),
                    ],
                )],
            )],
        );
        let (families, skipped) = convert_one(&req);
        assert_eq!(skipped, 0);
        let family = &families["miniprogram_app_launch_duration"];
        assert_eq!(family.samples.len(), 1);
        let sample = &family.samples[0];
        assert_eq!(&*sample.name, "miniprogram_app_launch_duration");
        assert_eq!(sample.value, 1200.0);
        assert_eq!(sample.timestamp_ms, 1_795_929_348_691);
        assert_eq!(
            sample.labels,
            labels(&[
                ("service_name", "shop"),
                ("service_instance_id", "i-1"),
                ("host_name", "h1"),
                ("net_host_name", "h2"),
                ("job_name", "shop"),
                ("node_identifier_host_name", "h1"),
                ("miniprogram_platform", "alipay"),
                ("miniprogram_page_path", "pages/index/index"),
                ("odd/key-x", "kept"),
            ])
        );
    }

    #[test]
    fn first_attribute_wins_when_keys_collide_after_escaping() {
        let req = request(
            vec![
                kv("a.b", s("resource-first")),
                kv("a_b", s("resource-second")),
                kv("job_name", s("explicit-job")),
                kv("service.name", s("svc")),
            ],
            vec![gauge(
                "m",
                vec![int_point(
                    1,
                    0,
                    vec![kv("x.y", s("point-first")), kv("x_y", s("point-second"))],
                )],
            )],
        );
        let (families, _) = convert_one(&req);
        let sample = &families["m"].samples[0];
        assert_eq!(&sample.labels["a_b"], "resource-first");
        assert_eq!(&sample.labels["x_y"], "point-first");
        // putIfAbsent: an explicit job_name is not replaced by service.name.
        assert_eq!(&sample.labels["job_name"], "explicit-job");
    }

    #[test]
    fn attribute_values_are_stringified_like_oap() {
        let req = request(
            vec![],
            vec![gauge(
                "m",
                vec![int_point(
                    1,
                    0,
                    vec![
                        kv("b", V::BoolValue(true)),
                        kv("i", V::IntValue(-42)),
                        kv("d1", V::DoubleValue(1.0)),
                        kv("d2", V::DoubleValue(1e10)),
                        kv("d3", V::DoubleValue(0.25)),
                        kv("arr", V::ArrayValue(ArrayValue { values: vec![] })),
                        kv("bytes", V::BytesValue(vec![1, 2])),
                        KeyValue {
                            key: "empty".to_owned(),
                            value: Some(AnyValue { value: None }),
                            ..Default::default()
                        },
                    ],
                )],
            )],
        );
        let (families, _) = convert_one(&req);
        assert_eq!(
            families["m"].samples[0].labels,
            labels(&[
                ("b", "true"),
                ("i", "-42"),
                ("d1", "1.0"),
                ("d2", "1.0E10"),
                ("d3", "0.25"),
                ("arr", ""),
                ("bytes", ""),
                ("empty", ""),
            ])
        );
    }

    #[test]
    fn metric_names_escape_dots_and_slashes() {
        let req = request(
            vec![],
            vec![gauge("a.b/c_d", vec![int_point(1, 0, vec![])])],
        );
        let (families, _) = convert_one(&req);
        assert!(families.contains_key("a_b_c_d"), "{:?}", families.keys());
    }

    #[test]
    fn sums_delta_and_cumulative_kept_unspecified_dropped() {
        let req = request(
            vec![],
            vec![
                sum("delta", OtlpTemporality::Delta, true),
                sum("cumulative", OtlpTemporality::Cumulative, true),
                sum("cumulative_gauge", OtlpTemporality::Cumulative, false),
                sum("unspecified", OtlpTemporality::Unspecified, true),
            ],
        );
        let (families, skipped) = convert_one(&req);
        for name in ["delta", "cumulative", "cumulative_gauge"] {
            assert_eq!(families[name].samples[0].value, 5.0, "{name}");
            assert_eq!(families[name].samples[0].timestamp_ms, 1000, "{name}");
        }
        assert!(!families.contains_key("unspecified"));
        assert_eq!(skipped, 1);
    }

    #[test]
    fn histogram_yields_count_sum_and_per_bucket_le_samples() {
        let point = HistogramDataPoint {
            attributes: vec![kv("http.request.method", s("GET"))],
            time_unix_nano: 2_000_000_000,
            count: 6,
            sum: Some(310.0),
            bucket_counts: vec![1, 2, 0, 3],
            explicit_bounds: vec![10.0, 25.0, 2500.0],
            ..Default::default()
        };
        let req = request(
            vec![kv("service.name", s("svc"))],
            vec![metric(
                "miniprogram.request.duration",
                OtlpData::Histogram(Histogram {
                    data_points: vec![point],
                    aggregation_temporality: OtlpTemporality::Delta as i32,
                }),
            )],
        );
        let (families, skipped) = convert_one(&req);
        assert_eq!(skipped, 0);
        let count = &families["miniprogram_request_duration_count"].samples;
        assert_eq!(count.len(), 1);
        assert_eq!(count[0].value, 6.0);
        assert_eq!(&count[0].labels["http_request_method"], "GET");
        assert_eq!(count[0].timestamp_ms, 2000);
        assert_eq!(
            families["miniprogram_request_duration_sum"].samples[0].value,
            310.0
        );
        let buckets: Vec<(String, f64)> = families["miniprogram_request_duration"]
            .samples
            .iter()
            .map(|s| (s.labels["le"].to_owned(), s.value))
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("10.0".to_owned(), 1.0),
                ("25.0".to_owned(), 2.0),
                ("2500.0".to_owned(), 0.0),
                ("Infinity".to_owned(), 3.0),
            ]
        );
        let bucket = &families["miniprogram_request_duration"].samples[0];
        assert_eq!(&bucket.labels["service_name"], "svc");
        assert_eq!(&bucket.labels["job_name"], "svc");
    }

    #[test]
    fn histogram_without_sum_reports_zero_and_short_buckets_are_skipped() {
        let good = HistogramDataPoint {
            count: 1,
            bucket_counts: vec![1, 0],
            explicit_bounds: vec![10.0],
            ..Default::default()
        };
        let short = HistogramDataPoint {
            count: 3,
            bucket_counts: vec![3],
            explicit_bounds: vec![10.0],
            ..Default::default()
        };
        let req = request(
            vec![],
            vec![metric(
                "h",
                OtlpData::Histogram(Histogram {
                    data_points: vec![short, good],
                    aggregation_temporality: 1,
                }),
            )],
        );
        let (families, skipped) = convert_one(&req);
        assert_eq!(skipped, 1);
        assert_eq!(families["h_count"].samples.len(), 1);
        assert_eq!(families["h_count"].samples[0].value, 1.0);
        assert_eq!(families["h_sum"].samples[0].value, 0.0);
        assert_eq!(families["h"].samples.len(), 2);
    }

    #[test]
    fn nan_and_infinite_values_are_skipped_and_counted() {
        let req = request(
            vec![],
            vec![
                gauge(
                    "g",
                    vec![
                        double_point(f64::NAN),
                        double_point(1.5),
                        double_point(f64::INFINITY),
                    ],
                ),
                gauge("only_nan", vec![double_point(f64::NAN)]),
            ],
        );
        let (families, skipped) = convert_one(&req);
        assert_eq!(skipped, 3);
        assert_eq!(families["g"].samples.len(), 1);
        assert_eq!(families["g"].samples[0].value, 1.5);
        assert!(
            !families.contains_key("only_nan"),
            "empty family must not exist"
        );
    }

    #[test]
    fn metric_without_data_type_is_skipped_not_fatal() {
        let mut req = request(
            vec![],
            vec![
                OtlpMetric {
                    name: "typeless".to_owned(),
                    ..Default::default()
                },
                gauge("after", vec![int_point(7, 0, vec![])]),
            ],
        );
        // A second resource after the bad metric must still be processed independently.
        req.resource_metrics.push(req.resource_metrics[0].clone());
        let batch = convert_metrics_request(&req);
        assert_eq!(batch.resources.len(), 2);
        assert_eq!(batch.skipped_points, 2);
        for families in &batch.resources {
            assert!(!families.contains_key("typeless"));
            assert_eq!(families["after"].samples[0].value, 7.0);
        }
    }

    #[test]
    fn no_recorded_value_points_are_skipped() {
        let mut flagged = int_point(1, 0, vec![]);
        flagged.flags = OtlpDataPointFlags::NoRecordedValueMask as u32;
        let req = request(
            vec![],
            vec![gauge("g", vec![flagged, int_point(2, 0, vec![])])],
        );
        let (families, skipped) = convert_one(&req);
        assert_eq!(skipped, 1);
        assert_eq!(families["g"].samples.len(), 1);
        assert_eq!(families["g"].samples[0].value, 2.0);
    }

    #[test]
    fn summary_yields_count_sum_and_quantile_samples() {
        let point = SummaryDataPoint {
            time_unix_nano: 3_000_000_000,
            count: 10,
            sum: 55.5,
            quantile_values: vec![
                ValueAtQuantile {
                    quantile: 0.5,
                    value: 4.0,
                },
                ValueAtQuantile {
                    quantile: 0.99,
                    value: 9.0,
                },
                ValueAtQuantile {
                    quantile: 1.0,
                    value: 10.0,
                },
            ],
            ..Default::default()
        };
        let req = request(
            vec![],
            vec![metric(
                "rpc.latency",
                OtlpData::Summary(Summary {
                    data_points: vec![point],
                }),
            )],
        );
        let (families, _) = convert_one(&req);
        assert_eq!(families["rpc_latency_count"].samples[0].value, 10.0);
        assert_eq!(families["rpc_latency_sum"].samples[0].value, 55.5);
        let quantiles: Vec<(String, f64)> = families["rpc_latency"]
            .samples
            .iter()
            .map(|s| (s.labels["quantile"].to_owned(), s.value))
            .collect();
        assert_eq!(
            quantiles,
            vec![
                ("0.5".to_owned(), 4.0),
                ("0.99".to_owned(), 9.0),
                ("1.0".to_owned(), 10.0),
            ]
        );
        assert_eq!(families["rpc_latency"].samples[0].timestamp_ms, 3000);
    }

    fn exponential(point: ExponentialHistogramDataPoint) -> ExportMetricsServiceRequest {
        request(
            vec![],
            vec![metric(
                "e",
                OtlpData::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![point],
                    aggregation_temporality: 1,
                }),
            )],
        )
    }

    #[test]
    fn exponential_histogram_becomes_explicit_buckets() {
        // scale 0 → base 2.
        let point = ExponentialHistogramDataPoint {
            count: 9,
            sum: Some(20.0),
            scale: 0,
            zero_count: 100,
            positive: Some(OtlpExponentialBuckets {
                offset: 1,
                bucket_counts: vec![1, 2, 3],
            }),
            negative: Some(OtlpExponentialBuckets {
                offset: 0,
                bucket_counts: vec![4, 5],
            }),
            ..Default::default()
        };
        let (families, skipped) = convert_one(&exponential(point));
        assert_eq!(skipped, 0);
        assert_eq!(families["e_count"].samples[0].value, 9.0);
        assert_eq!(families["e_sum"].samples[0].value, 20.0);
        let buckets: Vec<(String, f64)> = families["e"]
            .samples
            .iter()
            .map(|s| (s.labels["le"].to_owned(), s.value))
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("-2.0".to_owned(), 5.0),
                ("-1.0".to_owned(), 4.0),
                ("4.0".to_owned(), 1.0),
                ("8.0".to_owned(), 2.0),
                ("Infinity".to_owned(), 3.0),
            ]
        );
    }

    #[test]
    fn exponential_histogram_out_of_range_keeps_count_and_sum_only() {
        let point = ExponentialHistogramDataPoint {
            count: 2,
            sum: Some(1.0),
            scale: -11, // base = 2^2048 = +Inf
            positive: Some(OtlpExponentialBuckets {
                offset: 0,
                bucket_counts: vec![2],
            }),
            ..Default::default()
        };
        let (families, skipped) = convert_one(&exponential(point));
        assert_eq!(skipped, 0);
        assert_eq!(families["e_count"].samples[0].value, 2.0);
        assert!(!families.contains_key("e"));

        let no_positive = ExponentialHistogramDataPoint {
            count: 1,
            ..Default::default()
        };
        let (families, skipped) = convert_one(&exponential(no_positive));
        assert_eq!(skipped, 1);
        assert!(families.is_empty());
    }

    #[test]
    fn families_with_the_same_name_concatenate_across_metrics() {
        let req = request(
            vec![],
            vec![
                gauge("m", vec![int_point(1, 0, vec![])]),
                gauge("m", vec![int_point(2, 0, vec![])]),
            ],
        );
        let (families, _) = convert_one(&req);
        let values: Vec<f64> = families["m"].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![1.0, 2.0]);
    }

    #[test]
    fn decode_metrics_dispatches_on_content_type() {
        let req = request(
            vec![kv("service.name", s("svc"))],
            vec![gauge("m", vec![int_point(3, 0, vec![])])],
        );
        let proto = prost::Message::encode_to_vec(&req);
        let batch = decode_metrics("application/x-protobuf", &proto).unwrap();
        assert_eq!(batch.resources[0]["m"].samples[0].value, 3.0);

        let json = serde_json::to_vec(&req).unwrap();
        let batch = decode_metrics("application/json; charset=utf-8", &json).unwrap();
        assert_eq!(
            &batch.resources[0]["m"].samples[0].labels["service_name"],
            "svc"
        );

        let err = decode_metrics("application/x-protobuf", &proto[..proto.len() - 1]).unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::BadRequest);
        assert!(
            err.to_string().starts_with("invalid OTLP protobuf"),
            "{err}"
        );
        let err = decode_metrics("text/plain", &proto).unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::UnsupportedMediaType);
    }

    fn histogram_metric(name: &str, points: Vec<HistogramDataPoint>) -> OtlpMetric {
        metric(
            name,
            OtlpData::Histogram(Histogram {
                data_points: points,
                aggregation_temporality: OtlpTemporality::Delta as i32,
            }),
        )
    }

    #[test]
    fn counts_a_long_cannot_hold_refuse_the_whole_point() {
        let good = HistogramDataPoint {
            count: 2,
            sum: Some(30.0),
            bucket_counts: vec![1, 1],
            explicit_bounds: vec![100.0],
            ..Default::default()
        };
        let huge_count = HistogramDataPoint {
            count: u64::MAX,
            bucket_counts: vec![u64::MAX, u64::MAX],
            ..good.clone()
        };
        let one_huge_bucket = HistogramDataPoint {
            bucket_counts: vec![1, 1 << 63],
            ..good.clone()
        };
        let largest_long = HistogramDataPoint {
            count: i64::MAX as u64,
            bucket_counts: vec![0, i64::MAX as u64],
            ..good.clone()
        };
        let large = HistogramDataPoint {
            count: 1 << 62,
            bucket_counts: vec![0, 1 << 62],
            ..good.clone()
        };
        let req = request(
            vec![],
            vec![histogram_metric(
                "miniprogram.request.duration",
                vec![huge_count, good, one_huge_bucket, largest_long, large],
            )],
        );
        let batch = convert_metrics_request(&req);
        // i64::MAX is not an f64: as a sample it would be 2^63, one past the largest long.
        assert_eq!(batch.skipped_points, 3);
        assert_eq!(batch.skip_reasons.get(RejectReason::ValueOverflow), 3);
        let families = &batch.resources[0];
        let counts: Vec<f64> = families["miniprogram_request_duration_count"]
            .samples
            .iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(counts, [2.0, (1u64 << 62) as f64]);
        // No bucket of a refused point slipped through.
        assert_eq!(families["miniprogram_request_duration"].samples.len(), 4);
    }

    #[test]
    fn gauge_values_beyond_a_long_are_refused() {
        let req = request(
            vec![],
            vec![gauge(
                "g",
                vec![
                    double_point(1e300),
                    double_point(-1e19),
                    double_point(9.0e18),
                    double_point(-5.0),
                ],
            )],
        );
        let batch = convert_metrics_request(&req);
        assert_eq!(batch.skip_reasons.get(RejectReason::ValueOverflow), 2);
        let values: Vec<f64> = batch.resources[0]["g"]
            .samples
            .iter()
            .map(|s| s.value)
            .collect();
        // A negative value of a metric that is not a duration is legitimate.
        assert_eq!(values, [9.0e18, -5.0]);
    }

    #[test]
    fn negative_and_non_finite_durations_are_skipped_and_counted_by_reason() {
        let req = request(
            vec![],
            vec![
                gauge(
                    "miniprogram.app_launch.duration",
                    vec![
                        double_point(-1.0),
                        double_point(f64::NAN),
                        double_point(f64::NEG_INFINITY),
                        double_point(0.0),
                        double_point(250.0),
                    ],
                ),
                histogram_metric(
                    "miniprogram.request.duration",
                    vec![
                        HistogramDataPoint {
                            count: 1,
                            sum: Some(-3.0),
                            bucket_counts: vec![1, 0],
                            explicit_bounds: vec![100.0],
                            ..Default::default()
                        },
                        HistogramDataPoint {
                            count: 1,
                            sum: Some(f64::NAN),
                            bucket_counts: vec![1, 0],
                            explicit_bounds: vec![100.0],
                            ..Default::default()
                        },
                    ],
                ),
            ],
        );
        let batch = convert_metrics_request(&req);
        let reasons = batch.skip_reasons;
        assert_eq!(reasons.get(RejectReason::NegativeDuration), 2);
        assert_eq!(reasons.get(RejectReason::NonFiniteValue), 3);
        assert_eq!(batch.skipped_points, 5);
        let families = &batch.resources[0];
        let launches: Vec<f64> = families["miniprogram_app_launch_duration"]
            .samples
            .iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(launches, [0.0, 250.0]);
        assert!(
            !families.contains_key("miniprogram_request_duration_count"),
            "both histogram points are refused whole"
        );
    }
}
