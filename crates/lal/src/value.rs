//! Run-time values with Groovy-like truthiness, comparison and conversion.
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub(crate) fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Groovy truth: null, false, 0, "" and empty collections are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// Groovy's `toString()`; `None` for null.
    pub(crate) fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(n) => Some(n.to_string()),
            Value::Float(f) => Some(java_double(*f)),
            Value::Str(s) => Some(s.clone()),
            Value::List(items) => Some(format!(
                "[{}]",
                items
                    .iter()
                    .map(|v| v.to_text().unwrap_or_else(|| "null".to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Value::Map(m) => Some(format!(
                "[{}]",
                m.iter()
                    .map(|(k, v)| format!(
                        "{k}:{}",
                        v.to_text().unwrap_or_else(|| "null".to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Text used where null prints as `"null"` (string interpolation).
    pub(crate) fn interpolated(&self) -> String {
        self.to_text().unwrap_or_else(|| "null".to_string())
    }

    /// The value as a number, parsing strings; `None` if it is not numeric.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            Value::Bool(_) | Value::Null | Value::List(_) | Value::Map(_) => None,
        }
    }

    /// The value as an integer (floats truncate as Java's casts do); `None` if not numeric.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Float(f) => Some(*f as i64),
            Value::Str(s) => {
                let t = s.trim();
                t.parse::<i64>()
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
            }
            Value::Bool(_) | Value::Null | Value::List(_) | Value::Map(_) => None,
        }
    }

    /// `x as Type`. Null stays null; a failed numeric conversion gives null.
    pub(crate) fn cast(&self, ty: &str) -> Value {
        if self.is_null() {
            return Value::Null;
        }
        match ty {
            "String" => self.to_text().map(Value::Str).unwrap_or(Value::Null),
            "Long" | "Integer" | "long" | "int" => {
                self.as_i64().map(Value::Int).unwrap_or(Value::Null)
            }
            "Double" | "Float" | "double" | "float" => {
                self.as_f64().map(Value::Float).unwrap_or(Value::Null)
            }
            "Number" => match self {
                Value::Int(_) | Value::Float(_) => self.clone(),
                _ => self
                    .as_i64()
                    .map(Value::Int)
                    .or_else(|| self.as_f64().map(Value::Float))
                    .unwrap_or(Value::Null),
            },
            "Boolean" | "boolean" => match self {
                Value::Bool(b) => Value::Bool(*b),
                Value::Str(s) => Value::Bool(s.trim().eq_ignore_ascii_case("true")),
                other => Value::Bool(other.truthy()),
            },
            _ => self.clone(),
        }
    }

    /// Groovy `==`: numbers compare by value, otherwise same kind and equal.
    pub(crate) fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                self.as_f64() == other.as_f64()
            }
            _ => self == other,
        }
    }

    /// Groovy `<`/`>` ordering: null sorts first; numbers numerically (numeric strings
    /// included); strings lexically. `None` when the values cannot be compared.
    pub(crate) fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, Value::Null) => Some(Ordering::Equal),
            (Value::Null, _) => Some(Ordering::Less),
            (_, Value::Null) => Some(Ordering::Greater),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => {
                let (a, b) = (self.as_f64()?, other.as_f64()?);
                a.partial_cmp(&b)
            }
        }
    }

    /// `value.name` on a map; null for anything else.
    pub(crate) fn property(&self, name: &str) -> Value {
        match self {
            Value::Map(m) => m.get(name).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    pub(crate) fn index(&self, key: &Value) -> Value {
        match (self, key) {
            (Value::Map(m), k) => k
                .to_text()
                .and_then(|k| m.get(&k).cloned())
                .unwrap_or(Value::Null),
            (Value::List(l), Value::Int(i)) => {
                let i = if *i < 0 { l.len() as i64 + i } else { *i };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i).cloned())
                    .unwrap_or(Value::Null)
            }
            _ => Value::Null,
        }
    }

    /// The string methods the corpus uses, plus a few neighbours. Unknown methods give null.
    pub(crate) fn method(&self, name: &str, args: &[Value]) -> Value {
        let arg_text = |i: usize| args.get(i).and_then(Value::to_text).unwrap_or_default();
        match name {
            "toString" => self.to_text().map(Value::Str).unwrap_or(Value::Null),
            "isEmpty" => Value::Bool(!self.truthy()),
            "size" | "length" => match self {
                Value::Str(s) => Value::Int(s.chars().count() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                _ => Value::Null,
            },
            _ => {
                let Value::Str(s) = self else {
                    return Value::Null;
                };
                match name {
                    "trim" => Value::str(s.trim()),
                    "toLowerCase" => Value::str(s.to_lowercase()),
                    "toUpperCase" => Value::str(s.to_uppercase()),
                    "startsWith" => Value::Bool(s.starts_with(&arg_text(0))),
                    "endsWith" => Value::Bool(s.ends_with(&arg_text(0))),
                    "contains" => Value::Bool(s.contains(&arg_text(0))),
                    "equals" => Value::Bool(args.first().is_some_and(|a| a.loose_eq(self))),
                    "equalsIgnoreCase" => Value::Bool(s.eq_ignore_ascii_case(&arg_text(0))),
                    "split" => Value::List(
                        s.split(arg_text(0).as_str())
                            .filter(|p| !p.is_empty())
                            .map(Value::str)
                            .collect(),
                    ),
                    "substring" => {
                        let chars: Vec<char> = s.chars().collect();
                        let from = args.first().and_then(Value::as_i64).unwrap_or(0);
                        let to = args
                            .get(1)
                            .and_then(Value::as_i64)
                            .unwrap_or(chars.len() as i64);
                        let (from, to) =
                            (from.max(0) as usize, (to.max(0) as usize).min(chars.len()));
                        if from > to {
                            Value::Null
                        } else {
                            Value::Str(chars[from..to].iter().collect())
                        }
                    }
                    _ => Value::Null,
                }
            }
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::List(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl From<serde_yaml::Value> for Value {
    fn from(v: serde_yaml::Value) -> Self {
        match v {
            serde_yaml::Value::Null => Value::Null,
            serde_yaml::Value::Bool(b) => Value::Bool(b),
            serde_yaml::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_yaml::Value::String(s) => Value::Str(s),
            serde_yaml::Value::Sequence(a) => Value::List(a.into_iter().map(Value::from).collect()),
            serde_yaml::Value::Mapping(m) => Value::Map(
                m.into_iter()
                    .filter_map(|(k, v)| Some((Value::from(k).to_text()?, Value::from(v))))
                    .collect(),
            ),
            serde_yaml::Value::Tagged(t) => Value::from(t.value),
        }
    }
}

/// Java's `Double.toString` for the common cases: integral values keep a `.0`.
fn java_double(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 {
        format!("{f:.1}")
    } else if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groovy_conversions() {
        assert_eq!(Value::str(" 404 ").cast("Integer"), Value::Int(404));
        assert_eq!(Value::str("abc").cast("Long"), Value::Null);
        assert_eq!(Value::Int(5).cast("String"), Value::str("5"));
        assert_eq!(Value::Float(1.0).to_text().as_deref(), Some("1.0"));
        assert!(!Value::str("").truthy());
        assert!(Value::Null.compare(&Value::Int(400)) == Some(Ordering::Less));
        assert!(Value::Int(1).loose_eq(&Value::Float(1.0)));
        assert!(!Value::str("1").loose_eq(&Value::Int(1)));
    }
}
