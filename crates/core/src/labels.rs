//! [`Labels`]: a sample's label set, cheap to copy.
//!
//! Every OTLP data point carries the resource's attributes as labels, and MAL copies label sets
//! at each step (filters, groupings, histogram buckets). With `BTreeMap<String, String>` each copy
//! was one allocation per name and value; here a copy is a reference-count increment and a
//! changed copy shares every unchanged name and value. Order, equality and hashing are those of
//! the sorted map it replaces, and it serializes as the same map, so stored tables and the
//! write-ahead log read the same bytes.
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// A label name or value, shared between the label sets that hold it.
pub type LabelText = Arc<str>;

/// The decimal text of a histogram bound (`le`), shared with every other label set that names
/// it. Histograms name the same few bounds in every request, so they are formatted once. The
/// cache is per thread (no lock) and bounded, so odd bounds from a client cannot grow it forever.
pub fn bound_text(bound: i64) -> LabelText {
    const MAX_CACHED_BOUNDS: usize = 4096;
    thread_local! {
        static BOUNDS: std::cell::RefCell<foldhash::HashMap<i64, LabelText>> =
            Default::default();
    }
    BOUNDS.with(|b| {
        let mut b = b.borrow_mut();
        match b.get(&bound) {
            Some(text) => text.clone(),
            None => {
                let text = LabelText::from(bound.to_string());
                if b.len() < MAX_CACHED_BOUNDS {
                    b.insert(bound, text.clone());
                }
                text
            }
        }
    })
}

/// Whether two label names are equal. Names of one length often share a prefix (`service_`,
/// `http_`) but rarely both end bytes, which are checked before the bytes are compared.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.first() == b.first() && a.last() == b.last() && a == b
}

/// A sample's labels: (name, value) pairs sorted by name, names unique.
///
/// Reads give `&str`; writes take anything that converts into [`LabelText`] (`&str`, `String`,
/// or a [`LabelText`] already shared with another set, which copies nothing).
#[derive(Clone, Default)]
pub struct Labels(Arc<Vec<(LabelText, LabelText)>>);

impl Labels {
    /// An empty set.
    #[inline]
    pub fn new() -> Self {
        Labels::default()
    }

    /// An empty set with room for `n` labels.
    #[inline]
    pub fn with_capacity(n: usize) -> Self {
        Labels(Arc::new(Vec::with_capacity(n)))
    }

    /// A set of pairs already in name order with no name twice, taken as they are (checked in
    /// debug builds): for callers that build many sets over one sorted list of names.
    pub fn from_sorted_unique(pairs: Vec<(LabelText, LabelText)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
        Labels(Arc::new(pairs))
    }

    /// How many labels there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where `key` is, or where it would be inserted.
    #[inline]
    fn position(&self, key: &str) -> Result<usize, usize> {
        match self.find(key) {
            Some(i) => Ok(i),
            None => Err(self.0.partition_point(|(k, _)| **k < *key)),
        }
    }

    /// Where `key` is. Lookups of missing names (common: rules read labels a sample may lack)
    /// do not look for an insertion point.
    #[inline]
    fn find(&self, key: &str) -> Option<usize> {
        // Label sets are small and their names differ mostly in length: a scan that compares
        // lengths first touches the bytes of about one name, a binary search those of four.
        const SCAN: usize = 24;
        if self.0.len() <= SCAN {
            self.0.iter().position(|(k, _)| same_name(k, key))
        } else {
            self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_text(key).map(|v| &**v)
    }

    /// The value of `key` as shared text, to put into another set without copying it.
    #[inline]
    pub fn get_text(&self, key: &str) -> Option<&LabelText> {
        self.pair(key).map(|(_, v)| v)
    }

    /// The name and value of `key` as shared text.
    #[inline]
    pub fn pair(&self, key: &str) -> Option<&(LabelText, LabelText)> {
        self.find(key).map(|i| &self.0[i])
    }

    /// Whether `key` is set.
    #[inline]
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(
        &mut self,
        key: impl Into<LabelText> + AsRef<str>,
        value: impl Into<LabelText>,
    ) -> Option<LabelText> {
        match self.position(key.as_ref()) {
            Ok(i) => Some(std::mem::replace(
                &mut Arc::make_mut(&mut self.0)[i].1,
                value.into(),
            )),
            Err(i) => {
                let pair = (key.into(), value.into());
                match Arc::get_mut(&mut self.0) {
                    Some(pairs) => pairs.insert(i, pair),
                    None => {
                        // Shared: build the copy at its final size instead of copying, then growing.
                        let mut pairs = Vec::with_capacity(self.0.len() + 1);
                        pairs.extend_from_slice(&self.0[..i]);
                        pairs.push(pair);
                        pairs.extend_from_slice(&self.0[i..]);
                        self.0 = Arc::new(pairs);
                    }
                }
                None
            }
        }
    }

    /// Unsets `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<LabelText> {
        let i = self.find(key)?;
        Some(Arc::make_mut(&mut self.0).remove(i).1)
    }

    /// Keeps the labels `keep` accepts (it may be asked twice about a label, so it must not
    /// keep state). A set that keeps everything stays shared.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        if self.0.iter().all(|(k, v)| keep(k, v)) {
            return;
        }
        let mut kept = Vec::with_capacity(self.0.len());
        kept.extend(self.0.iter().filter(|(k, v)| keep(k, v)).cloned());
        self.0 = Arc::new(kept);
    }

    /// The labels in name order.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// The names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// The values in name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.0.iter().map(|(_, v)| &**v)
    }

    /// The pairs as shared text, in name order.
    #[inline]
    pub fn pairs(&self) -> &[(LabelText, LabelText)] {
        &self.0
    }
}

/// Borrowing iterator over `(name, value)` in name order.
#[derive(Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (LabelText, LabelText)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (&**k, &**v))
    }
    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (&**k, &**v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    #[inline]
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

// Equality and order are the sorted map's, but texts shared between sets (a histogram's
// buckets share every name and all values but `le`) are matched by address before by bytes.

/// Two shared texts' order, equal without reading them when they are one text.
#[inline]
fn cmp_text(a: &LabelText, b: &LabelText) -> std::cmp::Ordering {
    if Arc::ptr_eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        (**a).cmp(&**b)
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.len() == other.0.len()
                && self
                    .0
                    .iter()
                    .zip(other.0.iter())
                    .all(|(a, b)| cmp_text(&a.0, &b.0).is_eq() && cmp_text(&a.1, &b.1).is_eq()))
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equality above is equality of contents, which is what this hashes.
        self.0.hash(state)
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            let order = cmp_text(&a.0, &b.0).then_with(|| cmp_text(&a.1, &b.1));
            if order.is_ne() {
                return order;
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl IntoIterator for Labels {
    type Item = (LabelText, LabelText);
    type IntoIter = std::vec::IntoIter<(LabelText, LabelText)>;
    fn into_iter(self) -> Self::IntoIter {
        Arc::try_unwrap(self.0)
            .unwrap_or_else(|shared| (*shared).clone())
            .into_iter()
    }
}

impl<K: Into<LabelText>, V: Into<LabelText>> FromIterator<(K, V)> for Labels {
    /// Like collecting into a map: when a name repeats, the last value wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(LabelText, LabelText)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            // Reversed, a stable sort puts the last value of a name first, which dedup keeps.
            pairs.reverse();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, first| later.0 == first.0);
        }
        Labels(Arc::new(pairs))
    }
}

impl<K: Into<LabelText> + AsRef<str>, V: Into<LabelText>> Extend<(K, V)> for Labels {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Into<LabelText>, V: Into<LabelText>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;
    /// The value of a label that must be there (panics otherwise, as a map's index does).
    fn index(&self, key: &str) -> &str {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no label {key:?}"),
        }
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;
        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut pairs: Vec<(String, String)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }
        deserializer.deserialize_map(LabelsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn behaves_like_the_sorted_map_it_replaces() {
        let mut labels = Labels::new();
        assert_eq!(labels.insert("service_name", "demo"), None);
        assert_eq!(labels.insert("le", "100"), None);
        assert_eq!(labels.insert("p", "50"), None);
        assert_eq!(labels.insert("le", "200").as_deref(), Some("100"));
        assert_eq!(labels.get("le"), Some("200"));
        assert!(labels.contains_key("p"));
        assert_eq!(labels.get("missing"), None);
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            ["le", "p", "service_name"]
        );
        assert_eq!(labels.remove("p").as_deref(), Some("50"));
        assert_eq!(labels.remove("p"), None);
        assert_eq!(labels.len(), 2);
        labels.retain(|k, _| k != "le");
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("service_name", "demo")]
        );
    }

    #[test]
    fn names_of_one_length_with_the_same_ends_stay_apart() {
        let mut labels = Labels::new();
        for name in ["service_x_id", "service_y_id", "s", "t", "service_x_ie"] {
            labels.insert(name, name.to_uppercase());
        }
        for name in ["service_x_id", "service_y_id", "s", "t", "service_x_ie"] {
            assert_eq!(labels.get(name), Some(name.to_uppercase().as_str()));
        }
        assert_eq!(labels.get("service_z_id"), None);
        assert_eq!(labels.get(""), None);
        assert_eq!(labels.len(), 5);
    }

    #[test]
    fn a_changed_copy_leaves_the_original_alone() {
        let base: Labels = [("service_name", "demo"), ("platform", "wechat")].into();
        let mut bucket = base.clone();
        bucket.insert("le", "100");
        assert_eq!(base.len(), 2);
        assert_eq!(bucket.len(), 3);
        assert!(Arc::ptr_eq(
            base.get_text("service_name").unwrap(),
            bucket.get_text("service_name").unwrap()
        ));
    }

    #[test]
    fn collecting_keeps_the_last_value_of_a_repeated_name() {
        let labels: Labels = [("b", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("c", "5")]
            .into_iter()
            .collect();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("a", "4"), ("b", "3"), ("c", "5")]
        );
    }

    #[test]
    fn orders_and_hashes_like_the_map() {
        let sets = [
            vec![],
            vec![("a", "1")],
            vec![("a", "1"), ("b", "0")],
            vec![("a", "2")],
            vec![("b", "")],
        ];
        for x in &sets {
            for y in &sets {
                let (lx, ly): (Labels, Labels) =
                    (x.iter().copied().collect(), y.iter().copied().collect());
                assert_eq!(lx.cmp(&ly), map(x).cmp(&map(y)), "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn sets_sharing_texts_order_and_compare_like_the_map() {
        let base: Labels = [("service", "a"), ("le", "10")].into();
        let with = |k: &str, v: &str| {
            let mut l = base.clone();
            l.insert(k, v);
            l
        };
        let mut without_le = base.clone();
        without_le.remove("le");
        let sets = [
            base.clone(),
            base.clone(),
            with("le", "100"),
            with("le", "25"),
            with("le", "10"),
            with("service", "b"),
            with("z", ""),
            without_le,
            [("service", "a"), ("le", "10")].into(),
        ];
        let as_map = |l: &Labels| -> BTreeMap<String, String> {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let hash = |l: &Labels| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(l)
        };
        for x in &sets {
            for y in &sets {
                assert_eq!(x.cmp(y), as_map(x).cmp(&as_map(y)), "{x:?} vs {y:?}");
                assert_eq!(x == y, as_map(x) == as_map(y), "{x:?} vs {y:?}");
                if x == y {
                    assert_eq!(hash(x), hash(y), "{x:?} vs {y:?}");
                }
            }
        }
    }

    #[test]
    fn serializes_as_the_same_map() {
        let pairs = [("service_name", "demo"), ("le", "100")];
        let labels: Labels = pairs.into_iter().collect();
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            serde_json::to_string(&map(&pairs)).unwrap()
        );
        // Write-ahead logs written before postcard hold bincode of sample labels as a map, and
        // are still replayed: those bytes must read back.
        let old = bincode::serialize(&map(&pairs)).unwrap();
        assert_eq!(bincode::serialize(&labels).unwrap(), old);
        assert_eq!(bincode::deserialize::<Labels>(&old).unwrap(), labels);
        // postcard (no self-description) writes and reads the same map.
        let compact = postcard::to_allocvec(&map(&pairs)).unwrap();
        assert_eq!(postcard::to_allocvec(&labels).unwrap(), compact);
        assert_eq!(postcard::from_bytes::<Labels>(&compact).unwrap(), labels);
        let back: Labels = serde_json::from_str(r#"{"z":"1","a":"2"}"#).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), [("a", "2"), ("z", "1")]);
    }
}
