use crate::{LabelText, Labels};

/// One value of one metric at one instant with its labels (OAP's `Sample`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Metric name after OTLP escaping (`miniprogram_request_duration_count`), shared by the
    /// samples of a family.
    pub name: LabelText,
    /// Labels after OTLP escaping (`service_name`, `le`, ...).
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
}

/// All samples of one metric name within one unit of processing (OAP's `SampleFamily`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleFamily {
    /// The samples, in the order they arrived.
    pub samples: Vec<Sample>,
}

impl SampleFamily {
    /// A family of these samples.
    pub fn new(samples: Vec<Sample>) -> Self {
        SampleFamily { samples }
    }

    /// Whether the family holds no samples (OAP's `EMPTY`).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The samples of one processing unit (one OTLP `ResourceMetrics`, or one LAL `metrics {}`
/// emission), keyed by metric name. Rules see one of these at a time. Every rule looks its
/// inputs up here, so the map hashes with foldhash (randomly seeded, like SipHash) rather than
/// SipHash: the map lives for one request, whose size is capped.
pub type SampleFamilies = foldhash::HashMap<String, SampleFamily>;
