//! Sample builders the MAL test files share.
use skylark_core::{Sample, SampleFamilies};

/// A sample of family `name` with these labels.
pub fn sample(name: &str, labels: &[(&str, &str)], value: f64, timestamp_ms: i64) -> Sample {
    Sample {
        name: name.into(),
        labels: labels.iter().copied().collect(),
        value,
        timestamp_ms,
    }
}

/// The samples grouped into families by name, in order.
pub fn families(samples: Vec<Sample>) -> SampleFamilies {
    let mut m = SampleFamilies::default();
    for x in samples {
        m.entry(x.name.to_string()).or_default().samples.push(x);
    }
    m
}
