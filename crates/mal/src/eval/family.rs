//! Sample-family operations with OAP's label and timestamp semantics.
use crate::error::EvalError;
use skylark_core::{LabelText, Labels, Sample};
use std::borrow::Cow;
use std::hash::BuildHasher;

/// Samples split into groups of equal key values: groups in first-encounter order, members in
/// their original order. Held as one list of members plus group ends, not as a list per group,
/// so more groups cost no more allocations.
pub(crate) struct Groups<'s> {
    members: Vec<&'s Sample>,
    ends: Vec<usize>,
}

impl<'s> Groups<'s> {
    /// The groups' members, one slice per group.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[&'s Sample]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.members[start..end])
    }
}

/// Groups samples by the values of `keys` ("" when missing), keeping groups (and members) in
/// first-encounter order. Two samples share a group exactly when [`labels_of`] is equal.
pub(crate) fn group_by<'s>(
    samples: impl IntoIterator<Item = &'s Sample>,
    keys: &[String],
) -> Groups<'s> {
    // Few groups are found faster by scanning their key hashes than by a map; past this many, a
    // map from hash to the first group with it.
    const SCAN: usize = 16;
    let samples: Vec<&'s Sample> = samples.into_iter().collect();
    let width = keys.len();
    let value = |s: &'s Sample, k: &String| s.labels.get(k).unwrap_or("");
    // Most families hold one group (one resource, one page): while every sample matches the
    // first, compare in place and hash nothing.
    let Some(first) = samples.first() else {
        return Groups {
            members: samples,
            ends: Vec::new(),
        };
    };
    let first_key: Vec<&'s str> = keys.iter().map(|k| value(first, k)).collect();
    let one_group = samples[1..].iter().all(|s| {
        keys.iter()
            .zip(&first_key)
            .all(|(k, v)| same_value(value(s, k), v))
    });
    if one_group {
        let ends = vec![samples.len()];
        return Groups {
            members: samples,
            ends,
        };
    }
    let hasher = foldhash::fast::FixedState::with_seed(0);
    // Per group: its key hash and values (flat, `width` per group).
    let mut hashes: Vec<u64> = Vec::with_capacity(samples.len());
    let mut values: Vec<&'s str> = Vec::with_capacity(samples.len() * width);
    let mut index: foldhash::HashMap<u64, usize> = Default::default();
    let mut group_of: Vec<usize> = Vec::with_capacity(samples.len());
    let mut key: Vec<&'s str> = Vec::with_capacity(width);
    for s in &samples {
        key.clear();
        key.extend(keys.iter().map(|k| value(s, k)));
        let hash = hasher.hash_one(&key);
        let same = |g: usize| hashes[g] == hash && same_values(&values[g * width..][..width], &key);
        let found = if hashes.len() <= SCAN {
            (0..hashes.len()).find(|&g| same(g))
        } else {
            // Two different keys with one hash are all but impossible; if it happens, a scan.
            match index.get(&hash) {
                Some(&g) if same(g) => Some(g),
                Some(_) => (0..hashes.len()).find(|&g| same(g)),
                None => None,
            }
        };
        let g = match found {
            Some(g) => g,
            None => {
                let g = hashes.len();
                hashes.push(hash);
                values.extend_from_slice(&key);
                if hashes.len() > SCAN {
                    for (i, h) in hashes.iter().enumerate().skip(index.len()) {
                        index.entry(*h).or_insert(i);
                    }
                }
                g
            }
        };
        group_of.push(g);
    }
    // Counting sort by group keeps each group's members in their original order.
    let mut ends = vec![0usize; hashes.len()];
    for &g in &group_of {
        ends[g] += 1;
    }
    let mut next = Vec::with_capacity(ends.len());
    let mut total = 0;
    for end in ends.iter_mut() {
        next.push(total);
        total += *end;
        *end = total;
    }
    let mut members = samples.clone();
    for (s, &g) in samples.iter().zip(&group_of) {
        members[next[g]] = s;
        next[g] += 1;
    }
    Groups { members, ends }
}

/// Equal label values; values of one resource are one shared text, so the address usually
/// answers before the bytes are compared.
fn same_values(a: &[&str], b: &[&str]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
}

#[inline]
fn same_value(x: &str, y: &str) -> bool {
    x.len() == y.len() && (std::ptr::eq(x.as_ptr(), y.as_ptr()) || x == y)
}

/// `{label: value-or-""}` over exactly `keys`.
pub(crate) fn labels_of(sample: &Sample, keys: &[String]) -> Labels {
    labels_of_sorted(sample, &SortedKeys::new(keys))
}

/// Label names sorted and without repeats: the order of a label set. Sorted once, they give
/// each group's label set without comparing names again.
pub(crate) struct SortedKeys<'k>(Vec<&'k str>);

impl<'k> SortedKeys<'k> {
    pub(crate) fn new(keys: &'k [String]) -> Self {
        let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        SortedKeys(sorted)
    }
}

/// [`labels_of`] with the keys sorted beforehand.
pub(crate) fn labels_of_sorted(sample: &Sample, keys: &SortedKeys<'_>) -> Labels {
    let pairs = keys
        .0
        .iter()
        .map(|k| match sample.labels.pair(k) {
            Some((key, value)) => (key.clone(), value.clone()),
            None => (LabelText::from(*k), LabelText::from("")),
        })
        .collect();
    Labels::from_sorted_unique(pairs)
}

/// The samples `test` accepts, in order; stays borrowed when it accepts them all. Stops at the
/// first error.
pub(crate) fn keep<'a, E>(
    samples: Cow<'a, [Sample]>,
    mut test: impl FnMut(&Sample) -> Result<bool, E>,
) -> Result<Cow<'a, [Sample]>, E> {
    let mut accepted = Vec::with_capacity(samples.len());
    for s in samples.iter() {
        accepted.push(test(s)?);
    }
    if accepted.iter().all(|a| *a) {
        return Ok(samples);
    }
    let mut flags = accepted.into_iter();
    Ok(Cow::Owned(match samples {
        Cow::Borrowed(all) => all
            .iter()
            .filter(|_| flags.next().unwrap_or(false))
            .cloned()
            .collect(),
        Cow::Owned(mut all) => {
            all.retain(|_| flags.next().unwrap_or(false));
            all
        }
    }))
}

fn with(sample: &Sample, labels: Labels, value: f64) -> Sample {
    Sample {
        name: sample.name.clone(),
        labels,
        value,
        timestamp_ms: sample.timestamp_ms,
    }
}

/// How `tagEqual` & co. compare a label value with the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagTest {
    Equal,
    NotEqual,
    Match,
    NotMatch,
}

/// OAP's `stringComp`: empty and missing are equal to an empty wanted value.
fn string_comp(actual: &str, wanted: &str) -> bool {
    if actual.is_empty() && wanted.is_empty() {
        return true;
    }
    if actual.is_empty() {
        return false;
    }
    actual == wanted
}

pub(crate) fn tag_filter<'a>(
    samples: Cow<'a, [Sample]>,
    pairs: &[(String, String)],
    test: TagTest,
    regexes: &crate::eval::value::RegexCache,
) -> Result<Cow<'a, [Sample]>, EvalError> {
    let mut compiled = Vec::new();
    for (k, v) in pairs {
        let re = match test {
            TagTest::Match | TagTest::NotMatch => Some(regexes.get(v, true)?),
            _ => None,
        };
        compiled.push((k, v, re));
    }
    keep(samples, |s| {
        Ok(compiled.iter().all(|(k, v, re)| {
            let actual = s.labels.get(k).unwrap_or("");
            match (test, re) {
                (TagTest::Equal, _) => string_comp(actual, v),
                (TagTest::NotEqual, _) => !string_comp(actual, v),
                (TagTest::Match, Some(re)) => re.is_match(actual),
                (TagTest::NotMatch, Some(re)) => !re.is_match(actual),
                _ => false,
            }
        }))
    })
}

/// Aggregation kinds of `sum/avg/min/max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agg {
    Sum,
    Avg,
    Min,
    Max,
}

fn fold(agg: Agg, members: &[&Sample]) -> f64 {
    let values = members.iter().map(|s| s.value);
    match agg {
        Agg::Sum => values.sum(),
        Agg::Avg => values.sum::<f64>() / members.len().max(1) as f64,
        Agg::Min => values.fold(f64::INFINITY, f64::min),
        Agg::Max => values.fold(f64::NEG_INFINITY, f64::max),
    }
}

/// `sum/avg/min/max(by)`: output labels are exactly `by`; timestamp of the first member.
pub(crate) fn aggregate(samples: &[Sample], by: Option<&[String]>, agg: Agg) -> Vec<Sample> {
    let Some(first) = samples.first() else {
        return Vec::new();
    };
    match by {
        None => {
            let all: Vec<&Sample> = samples.iter().collect();
            vec![with(first, Labels::new(), fold(agg, &all))]
        }
        Some(by) => {
            let sorted = SortedKeys::new(by);
            group_by(samples, by)
                .iter()
                .map(|members| {
                    with(
                        members[0],
                        labels_of_sorted(members[0], &sorted),
                        fold(agg, members),
                    )
                })
                .collect()
        }
    }
}

/// `count(by)` as OAP counts (see oap-semantics §2.3).
pub(crate) fn count(samples: &[Sample], by: Option<&[String]>) -> Vec<Sample> {
    let Some(first) = samples.first() else {
        return Vec::new();
    };
    match by {
        None => vec![with(first, Labels::new(), samples.len() as f64)],
        Some([one]) => {
            let mut distinct = std::collections::HashSet::new();
            for s in samples {
                if let Some(v) = s.labels.get(one).filter(|v| !v.trim().is_empty()) {
                    distinct.insert(v);
                }
            }
            vec![with(first, Labels::new(), distinct.len() as f64)]
        }
        Some(by) => {
            let having = samples
                .iter()
                .filter(|s| by.iter().all(|k| s.labels.contains_key(k)));
            let groups: Vec<Sample> = group_by(having, by)
                .iter()
                .map(|members| with(members[0], labels_of(members[0], by), members.len() as f64))
                .collect();
            let outer = &by[..by.len() - 1];
            group_by(&groups, outer)
                .iter()
                .map(|members| {
                    with(
                        members[0],
                        labels_of(members[0], outer),
                        members.len() as f64,
                    )
                })
                .collect()
        }
    }
}

/// Each value through `f`; NaN results are dropped.
pub(crate) fn map_values<'a>(
    samples: Cow<'a, [Sample]>,
    f: impl Fn(f64) -> f64,
) -> Cow<'a, [Sample]> {
    Cow::Owned(match samples {
        Cow::Borrowed(all) => all
            .iter()
            .filter_map(|s| {
                let v = f(s.value);
                (!v.is_nan()).then(|| with(s, s.labels.clone(), v))
            })
            .collect(),
        Cow::Owned(mut all) => {
            all.retain_mut(|s| {
                s.value = f(s.value);
                !s.value.is_nan()
            });
            all
        }
    })
}

/// SF op SF: each left sample meets the right sample with the identical label map.
pub(crate) fn zip(left: &[Sample], right: &[Sample], f: impl Fn(f64, f64) -> f64) -> Vec<Sample> {
    left.iter()
        .filter_map(|l| {
            right
                .iter()
                .find(|r| r.labels == l.labels)
                .map(|r| with(l, l.labels.clone(), f(l.value, r.value)))
        })
        .filter(|s| !s.value.is_nan())
        .collect()
}

/// `histogram(le, unit)`: re-labels `le` in milliseconds (as a long) and sorts by it; samples
/// without the label come first, unchanged.
pub(crate) fn histogram(
    samples: Cow<'_, [Sample]>,
    le: &str,
    scale: i64,
) -> Result<Vec<Sample>, EvalError> {
    let mut bounds = Vec::with_capacity(samples.len());
    for s in samples.iter() {
        if let Some(v) = s.labels.get(le) {
            let bound = parse_java_double(v).ok_or_else(|| {
                EvalError::new(format!("histogram bound {le}='{v}' is not a number"))
            })?;
            bounds.push(Some(bound));
        } else {
            bounds.push(None);
        }
    }
    let (mut out, mut bucketed): (Vec<Sample>, Vec<(f64, Sample)>) =
        (Vec::new(), Vec::with_capacity(samples.len()));
    for (s, bound) in samples.into_owned().into_iter().zip(bounds) {
        match bound {
            Some(b) => bucketed.push((b, s)),
            None => out.push(s),
        }
    }
    bucketed.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.reserve(bucketed.len());
    for (bound, mut s) in bucketed {
        // Java's (long) cast saturates, and NaN becomes 0 — as Rust's `as`.
        let ms = skylark_core::bound_text((bound * scale as f64) as i64);
        if le != "le" {
            s.labels.remove(le);
        }
        s.labels.insert("le", ms);
        out.push(s);
    }
    Ok(out)
}

/// Java's `Double.parseDouble` for the forms bucket bounds take.
pub(crate) fn parse_java_double(s: &str) -> Option<f64> {
    match s.trim() {
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        t => t.trim_end_matches(['d', 'D', 'f', 'F']).parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(labels: &[(&str, &str)], v: f64, ts: i64) -> Sample {
        Sample {
            name: "m".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: v,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn count_with_one_label_counts_distinct_non_blank_values() {
        let xs = vec![
            s(&[("a", "x")], 1.0, 1),
            s(&[("a", "x")], 1.0, 2),
            s(&[("a", "y")], 1.0, 3),
            s(&[], 1.0, 4),
        ];
        let out = count(&xs, Some(&["a".to_string()]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, 2.0);
        assert!(out[0].labels.is_empty());
    }

    #[test]
    fn count_with_two_labels_counts_inner_groups_per_outer() {
        let xs = vec![
            s(&[("svc", "a"), ("pod", "1")], 1.0, 1),
            s(&[("svc", "a"), ("pod", "2")], 1.0, 1),
            s(&[("svc", "a"), ("pod", "2")], 1.0, 1),
            s(&[("svc", "b"), ("pod", "1")], 1.0, 1),
        ];
        let out = count(&xs, Some(&["svc".to_string(), "pod".to_string()]));
        let a = out
            .iter()
            .find(|x| x.labels.get("svc") == Some("a"))
            .unwrap();
        assert_eq!(a.value, 2.0);
    }

    #[test]
    fn groups_keep_first_encounter_order_past_the_scan_limit() {
        // 40 groups (more than are scanned), visited round-robin three times.
        let xs: Vec<Sample> = (0..120)
            .map(|i| {
                let g = format!("g{}", i % 40);
                s(&[("a", &g), ("b", "same")], i as f64, i)
            })
            .collect();
        let groups = group_by(&xs, &["a".to_string(), "missing".to_string()]);
        let seen: Vec<Vec<f64>> = groups
            .iter()
            .map(|m| m.iter().map(|s| s.value).collect())
            .collect();
        assert_eq!(seen.len(), 40);
        for (g, values) in seen.iter().enumerate() {
            let g = g as f64;
            assert_eq!(values, &[g, g + 40.0, g + 80.0], "group {g}");
        }
        assert_eq!(
            group_by(std::iter::empty(), &["a".to_string()])
                .iter()
                .count(),
            0
        );
    }

    #[test]
    fn min_and_max_pick_extremes() {
        let xs = vec![s(&[("a", "x")], 3.0, 1), s(&[("a", "x")], 7.0, 2)];
        assert_eq!(aggregate(&xs, None, Agg::Min)[0].value, 3.0);
        assert_eq!(aggregate(&xs, None, Agg::Max)[0].value, 7.0);
    }
}
