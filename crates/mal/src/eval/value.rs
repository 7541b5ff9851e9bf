//! Runtime values and the Groovy-like closure interpreter.
use crate::ast::{BinOp, Closure, Expr, ExprKind, Stmt, UnaryOp};
use crate::error::EvalError;
use regex::Regex;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A value while evaluating MAL or a closure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// Groovy maps keep insertion order.
    Map(Vec<(String, Value)>),
    /// A class name used for enums and static calls (`Layer`, `ProcessRegistry`).
    Class(String),
    /// `Layer.GENERAL` and friends.
    Enum(String, String),
}

type EvalResult<T> = Result<T, EvalError>;

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Class(_) => "class",
            Value::Enum(..) => "enum",
        }
    }

    /// Groovy truth.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Class(_) | Value::Enum(..) => true,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Groovy's `toString()`.
    pub(crate) fn render(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => java_double(*f),
            Value::Str(s) => s.clone(),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::render).collect::<Vec<_>>().join(", ")
            ),
            Value::Map(m) => format!(
                "[{}]",
                m.iter()
                    .map(|(k, v)| format!("{k}:{}", v.render()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Class(c) => c.clone(),
            Value::Enum(_, n) => n.clone(),
        }
    }

    pub(crate) fn from_labels(labels: &skylark_core::Labels) -> Value {
        Value::Map(
            labels
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::Str(v.to_owned())))
                .collect(),
        )
    }

    /// The map a closure that reads only `keys` of its labels needs: those labels, when present.
    pub(crate) fn from_some_labels(labels: &skylark_core::Labels, keys: &[String]) -> Value {
        Value::Map(
            keys.iter()
                .filter_map(|k| labels.get(k).map(|v| (k.clone(), Value::Str(v.to_owned()))))
                .collect(),
        )
    }

    /// A label map from a closure's map; null values are dropped (a missing label and a null
    /// one read the same everywhere downstream).
    pub(crate) fn to_labels(&self) -> Option<skylark_core::Labels> {
        match self {
            Value::Map(m) => Some(
                m.iter()
                    .filter(|(_, v)| *v != Value::Null)
                    .map(|(k, v)| (k.clone(), v.render()))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Java's `Double.toString` for the values MAL meets (`1.0`, `0.5`, `1.0E10`).
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-3..1e7).contains(&a) {
        let s = format!("{f:E}");
        // Rust writes `1E10`; Java writes `1.0E10`.
        return match s.split_once('E') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
            _ => s,
        };
    }
    if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Compiled regexes by (pattern, anchored), shared by all rules of a rule set.
#[derive(Debug, Default)]
pub(crate) struct RegexCache {
    map: Mutex<HashMap<(String, bool), Arc<Regex>>>,
}

impl RegexCache {
    /// `anchored` gives Java's `String.matches` (whole string) semantics.
    pub(crate) fn get(&self, pattern: &str, anchored: bool) -> EvalResult<Arc<Regex>> {
        let key = (pattern.to_string(), anchored);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = map.get(&key) {
            return Ok(r.clone());
        }
        let src = if anchored {
            format!("^(?:{pattern})$")
        } else {
            pattern.to_string()
        };
        let re = Regex::new(&src)
            .map_err(|e| EvalError::new(format!("invalid regex '{pattern}': {e}")))?;
        let re = Arc::new(re);
        map.insert(key, re.clone());
        Ok(re)
    }
}

/// Java replacement text (`$1`, `\$`) to the regex crate's (`${1}`, `$$`).
fn java_replacement(rep: &str) -> String {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{digits}}}"));
            }
            _ => out.push(c),
        }
    }
    out
}

/// The label keys a one-parameter closure reads from its parameter, when that is all it does
/// with it: only `p.key`, `p?.key` and `p['key']` reads, no assignment through it, no method
/// call on it and no other use of the whole map. Such a closure gives the same result when
/// handed only those labels. `None` when the closure may see or change more.
pub(crate) fn label_reads(c: &Closure) -> Option<Vec<String>> {
    let param = match c.params.as_slice() {
        [] => "it",
        [p] => p.as_str(),
        _ => return None,
    };
    let mut keys = Vec::new();
    c.body
        .iter()
        .all(|s| stmt_reads(s, param, &mut keys))
        .then_some(keys)
}

fn stmt_reads(s: &Stmt, p: &str, keys: &mut Vec<String>) -> bool {
    match s {
        Stmt::Expr(e) => expr_reads(e, p, keys),
        Stmt::Var { name, value, .. } => {
            name != p && value.as_ref().is_none_or(|v| expr_reads(v, p, keys))
        }
        Stmt::If {
            cond,
            then,
            otherwise,
        } => {
            expr_reads(cond, p, keys)
                && then.iter().all(|s| stmt_reads(s, p, keys))
                && otherwise
                    .as_ref()
                    .is_none_or(|o| o.iter().all(|s| stmt_reads(s, p, keys)))
        }
        Stmt::Return(e, _) => e.as_ref().is_none_or(|e| expr_reads(e, p, keys)),
        Stmt::Block(b) => b.iter().all(|s| stmt_reads(s, p, keys)),
    }
}

fn expr_reads(e: &Expr, p: &str, keys: &mut Vec<String>) -> bool {
    let mut read = |k: &str| {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.to_string());
        }
        true
    };
    match &e.kind {
        ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Null => true,
        ExprKind::Ident(name) => name != p,
        ExprKind::Property { target, name, .. } => match &target.kind {
            ExprKind::Ident(t) if t == p => read(name),
            _ => expr_reads(target, p, keys),
        },
        ExprKind::Index { target, index } => match (&target.kind, &index.kind) {
            (ExprKind::Ident(t), ExprKind::Str(k)) if t == p => read(k),
            _ => expr_reads(target, p, keys) && expr_reads(index, p, keys),
        },
        ExprKind::List(items) => items.iter().all(|i| expr_reads(i, p, keys)),
        // Bare identifiers as map keys are literal text, not variables.
        ExprKind::Map(entries) => entries.iter().all(|(k, v)| {
            (matches!(k.kind, ExprKind::Ident(_)) || expr_reads(k, p, keys))
                && expr_reads(v, p, keys)
        }),
        ExprKind::Closure(_) | ExprKind::Assign { .. } => false,
        ExprKind::Call { target, args, .. } => {
            target.as_ref().is_none_or(|t| expr_reads(t, p, keys))
                && args.iter().all(|a| expr_reads(a, p, keys))
        }
        ExprKind::Unary { expr, .. } | ExprKind::Cast { expr, .. } => expr_reads(expr, p, keys),
        ExprKind::Binary { lhs, rhs, .. } | ExprKind::Elvis { lhs, rhs } => {
            expr_reads(lhs, p, keys) && expr_reads(rhs, p, keys)
        }
        ExprKind::Ternary {
            cond,
            then,
            otherwise,
        } => {
            expr_reads(cond, p, keys) && expr_reads(then, p, keys) && expr_reads(otherwise, p, keys)
        }
    }
}

enum Flow {
    Normal(Value),
    Return(Value),
}

/// Runs closures; variables live in a stack of scopes.
pub(crate) struct Interp<'a> {
    pub(crate) regexes: &'a RegexCache,
    scopes: Vec<HashMap<String, Value>>,
}

impl<'a> Interp<'a> {
    pub(crate) fn new(regexes: &'a RegexCache) -> Self {
        Interp {
            regexes,
            scopes: Vec::new(),
        }
    }

    /// Calls `c` with `args`; returns its result and the final values of its parameters
    /// (closures mutate the `tags` map they are given).
    pub(crate) fn call(
        &mut self,
        c: &Closure,
        args: Vec<Value>,
    ) -> EvalResult<(Value, Vec<Value>)> {
        const IMPLICIT: &[&str] = &["it"];
        let names: Vec<&str> = if c.params.is_empty() {
            IMPLICIT.to_vec()
        } else {
            c.params.iter().map(String::as_str).collect()
        };
        let mut scope = HashMap::with_capacity(names.len());
        let mut args = args.into_iter();
        for name in &names {
            scope.insert(name.to_string(), args.next().unwrap_or(Value::Null));
        }
        self.scopes.push(scope);
        let r = self.block(&c.body);
        let mut scope = self.scopes.pop().unwrap_or_default();
        let out = match r? {
            Flow::Normal(v) | Flow::Return(v) => v,
        };
        // A name given twice reads the same final value at each place.
        let params = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if names[i + 1..].contains(n) {
                    scope.get(*n).cloned()
                } else {
                    scope.remove(*n)
                }
                .unwrap_or(Value::Null)
            })
            .collect();
        Ok((out, params))
    }

    fn block(&mut self, stmts: &[Stmt]) -> EvalResult<Flow> {
        let mut last = Value::Null;
        for s in stmts {
            match self.stmt(s)? {
                Flow::Return(v) => return Ok(Flow::Return(v)),
                Flow::Normal(v) => last = v,
            }
        }
        Ok(Flow::Normal(last))
    }

    fn scoped_block(&mut self, stmts: &[Stmt]) -> EvalResult<Flow> {
        self.scopes.push(HashMap::new());
        let r = self.block(stmts);
        self.scopes.pop();
        r
    }

    fn stmt(&mut self, s: &Stmt) -> EvalResult<Flow> {
        match s {
            Stmt::Expr(e) => Ok(Flow::Normal(self.expr(e)?)),
            Stmt::Var { name, value, .. } => {
                let v = match value {
                    Some(e) => self.expr(e)?,
                    None => Value::Null,
                };
                if let Some(scope) = self.scopes.last_mut() {
                    scope.insert(name.clone(), v.clone());
                }
                Ok(Flow::Normal(v))
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                if self.expr(cond)?.truthy() {
                    self.scoped_block(then)
                } else if let Some(o) = otherwise {
                    self.scoped_block(o)
                } else {
                    Ok(Flow::Normal(Value::Null))
                }
            }
            Stmt::Return(e, _) => {
                let v = match e {
                    Some(e) => self.expr(e)?,
                    None => Value::Null,
                };
                Ok(Flow::Return(v))
            }
            Stmt::Block(b) => self.scoped_block(b),
        }
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    fn lookup_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.scopes.iter_mut().rev().find_map(|s| s.get_mut(name))
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> EvalResult<Value> {
        Ok(match &e.kind {
            ExprKind::Number(n, true) if n.abs() < 9.0e15 => Value::Int(*n as i64),
            ExprKind::Number(n, _) => Value::Float(*n),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Null => Value::Null,
            ExprKind::Ident(name) => match self.lookup(name) {
                Some(v) => v.clone(),
                None if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    Value::Class(name.clone())
                }
                None => return Err(EvalError::new(format!("no such variable '{name}'"))),
            },
            ExprKind::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<EvalResult<_>>()?,
            ),
            ExprKind::Map(entries) => {
                let mut m: Vec<(String, Value)> = Vec::new();
                for (k, v) in entries {
                    let key = match &k.kind {
                        ExprKind::Ident(n) => n.clone(),
                        _ => self.expr(k)?.render(),
                    };
                    let v = self.expr(v)?;
                    map_put(&mut m, key, v);
                }
                Value::Map(m)
            }
            ExprKind::Closure(_) => {
                return Err(EvalError::new("nested closures are not supported"))
            }
            ExprKind::Property { .. } | ExprKind::Index { .. } => self.read(e)?.into_owned(),
            ExprKind::Call {
                target,
                name,
                args,
                safe,
                ..
            } => self.call_method(target.as_deref(), name, args, *safe)?,
            ExprKind::Unary { op, expr } => {
                let v = self.expr(expr)?;
                match op {
                    UnaryOp::Not => Value::Bool(!v.truthy()),
                    UnaryOp::Plus => v,
                    UnaryOp::Neg => match v {
                        Value::Int(i) => Value::Int(i.wrapping_neg()),
                        Value::Float(f) => Value::Float(-f),
                        other => {
                            return Err(EvalError::new(format!(
                                "cannot negate a {}",
                                other.type_name()
                            )))
                        }
                    },
                }
            }
            ExprKind::Binary { op, lhs, rhs } => match op {
                BinOp::And => Value::Bool(self.expr(lhs)?.truthy() && self.expr(rhs)?.truthy()),
                BinOp::Or => Value::Bool(self.expr(lhs)?.truthy() || self.expr(rhs)?.truthy()),
                _ if is_literal(rhs) => {
                    // A literal has no side effects, so it may be evaluated first and the left
                    // side compared in place.
                    let regexes = self.regexes;
                    let r = self.expr(rhs)?;
                    let l = self.read(lhs)?;
                    binary(*op, &l, &r, regexes)?
                }
                _ => {
                    let l = self.expr(lhs)?;
                    let r = self.expr(rhs)?;
                    binary(*op, &l, &r, self.regexes)?
                }
            },
            ExprKind::Ternary {
                cond,
                then,
                otherwise,
            } => {
                if self.expr(cond)?.truthy() {
                    self.expr(then)?
                } else {
                    self.expr(otherwise)?
                }
            }
            ExprKind::Elvis { lhs, rhs } => {
                let l = self.expr(lhs)?;
                if l.truthy() {
                    l
                } else {
                    self.expr(rhs)?
                }
            }
            ExprKind::Cast { expr, ty } => cast(self.expr(expr)?, ty)?,
            ExprKind::Assign { target, value } => {
                let v = self.expr(value)?;
                self.assign(target, v.clone())?;
                v
            }
        })
    }

    /// Evaluates `e`, borrowing when it names a variable or a property path in one: closures
    /// read single labels of maps they are given far more often than they copy them.
    fn read(&mut self, e: &Expr) -> EvalResult<Cow<'_, Value>> {
        match &e.kind {
            ExprKind::Ident(name) if self.lookup(name).is_some() => self
                .lookup(name)
                .map(Cow::Borrowed)
                .ok_or_else(|| EvalError::new(format!("no such variable '{name}'"))),
            ExprKind::Property { target, name, safe } => {
                let t = self.read(target)?;
                property_of(t, name, *safe)
            }
            ExprKind::Index { target, index } if is_literal(index) => {
                // A literal index cannot observe being evaluated before its target.
                let i = self.expr(index)?;
                let t = self.read(target)?;
                index_of(t, &i)
            }
            ExprKind::Index { target, index } => {
                let t = self.expr(target)?;
                let i = self.expr(index)?;
                index_value(&t, &i).map(Cow::Owned)
            }
            _ => self.expr(e).map(Cow::Owned),
        }
    }

    /// The variable or map slot an assignable expression names, created when missing.
    fn place(&mut self, target: &Expr, keys: &mut Vec<String>) -> EvalResult<String> {
        match &target.kind {
            ExprKind::Ident(name) => Ok(name.clone()),
            ExprKind::Property {
                target: t, name, ..
            } => {
                let root = self.place(t, keys)?;
                keys.push(name.clone());
                Ok(root)
            }
            ExprKind::Index { target: t, index } => {
                let key = self.expr(index)?.render();
                let root = self.place(t, keys)?;
                keys.push(key);
                Ok(root)
            }
            _ => Err(EvalError::new("cannot assign to this expression")),
        }
    }

    fn slot_mut(&mut self, target: &Expr) -> EvalResult<&mut Value> {
        let mut keys = Vec::new();
        let root = self.place(target, &mut keys)?;
        let mut slot = self
            .lookup_mut(&root)
            .ok_or_else(|| EvalError::new(format!("no such variable '{root}'")))?;
        for k in keys {
            let Value::Map(m) = slot else {
                return Err(EvalError::new(format!(
                    "cannot set property '{k}' of a {}",
                    slot.type_name()
                )));
            };
            let idx = match m.iter().position(|(mk, _)| *mk == k) {
                Some(i) => i,
                None => {
                    m.push((k, Value::Null));
                    m.len() - 1
                }
            };
            slot = &mut m[idx].1;
        }
        Ok(slot)
    }

    fn assign(&mut self, target: &Expr, v: Value) -> EvalResult<()> {
        if let ExprKind::Ident(name) = &target.kind {
            match self.lookup_mut(name) {
                Some(slot) => *slot = v,
                None => {
                    if let Some(s) = self.scopes.last_mut() {
                        s.insert(name.clone(), v);
                    }
                }
            }
            return Ok(());
        }
        *self.slot_mut(target)? = v;
        Ok(())
    }

    fn call_method(
        &mut self,
        target: Option<&Expr>,
        name: &str,
        args: &[Expr],
        safe: bool,
    ) -> EvalResult<Value> {
        let Some(target) = target else {
            return Err(EvalError::new(format!("unknown function '{name}'")));
        };
        let argv: Vec<Value> = args
            .iter()
            .map(|a| self.expr(a))
            .collect::<EvalResult<_>>()?;
        // Map mutators change the variable the map lives in.
        if matches!(name, "remove" | "put" | "putAll" | "clear")
            && matches!(
                target.kind,
                ExprKind::Ident(_) | ExprKind::Property { .. } | ExprKind::Index { .. }
            )
        {
            let is_map = matches!(*self.read(target)?, Value::Map(_));
            if is_map {
                let slot = self.slot_mut(target)?;
                if let Value::Map(m) = slot {
                    return map_mutate(m, name, &argv);
                }
            }
        }
        let regexes = self.regexes;
        let t = self.read(target)?;
        if *t == Value::Null {
            if safe {
                return Ok(Value::Null);
            }
            return Err(EvalError::new(format!("cannot call '{name}' on null")));
        }
        method(&t, name, &argv, regexes)
    }
}

fn map_put(m: &mut Vec<(String, Value)>, k: String, v: Value) -> Value {
    match m.iter_mut().find(|(mk, _)| *mk == k) {
        Some(e) => std::mem::replace(&mut e.1, v),
        None => {
            m.push((k, v));
            Value::Null
        }
    }
}

fn map_mutate(m: &mut Vec<(String, Value)>, name: &str, args: &[Value]) -> EvalResult<Value> {
    match (name, args) {
        ("remove", [k]) => {
            let k = k.render();
            Ok(match m.iter().position(|(mk, _)| *mk == k) {
                Some(i) => m.remove(i).1,
                None => Value::Null,
            })
        }
        ("put", [k, v]) => Ok(map_put(m, k.render(), v.clone())),
        ("putAll", [Value::Map(other)]) => {
            for (k, v) in other {
                map_put(m, k.clone(), v.clone());
            }
            Ok(Value::Null)
        }
        ("clear", []) => {
            m.clear();
            Ok(Value::Null)
        }
        _ => Err(EvalError::new(format!(
            "wrong arguments for map method '{name}'"
        ))),
    }
}

fn property(t: &Value, name: &str, safe: bool) -> EvalResult<Value> {
    match t {
        Value::Null if safe => Ok(Value::Null),
        Value::Null => Err(EvalError::new(format!(
            "cannot get property '{name}' of null"
        ))),
        Value::Map(m) => Ok(m
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)),
        Value::Class(c) => Ok(Value::Enum(c.clone(), name.to_string())),
        Value::List(l) if name == "size" => Ok(Value::Int(l.len() as i64)),
        other => Err(EvalError::new(format!(
            "cannot get property '{name}' of a {}",
            other.type_name()
        ))),
    }
}

/// Literals evaluate without side effects or variable reads.
fn is_literal(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Null
    )
}

/// `property`, borrowing the entry when the map itself is borrowed.
fn property_of<'v>(t: Cow<'v, Value>, name: &str, safe: bool) -> EvalResult<Cow<'v, Value>> {
    match t {
        Cow::Borrowed(Value::Map(m)) => Ok(m
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| Cow::Borrowed(v))
            .unwrap_or(Cow::Owned(Value::Null))),
        t => property(&t, name, safe).map(Cow::Owned),
    }
}

/// `index_value`, borrowing the entry when the map itself is borrowed.
fn index_of<'v>(t: Cow<'v, Value>, i: &Value) -> EvalResult<Cow<'v, Value>> {
    match t {
        Cow::Borrowed(Value::Map(m)) => {
            let k = i.render();
            Ok(m.iter()
                .find(|(mk, _)| *mk == k)
                .map(|(_, v)| Cow::Borrowed(v))
                .unwrap_or(Cow::Owned(Value::Null)))
        }
        t => index_value(&t, i).map(Cow::Owned),
    }
}

fn index_value(t: &Value, i: &Value) -> EvalResult<Value> {
    match (t, i) {
        (Value::Map(m), k) => {
            let k = k.render();
            Ok(m.iter()
                .find(|(mk, _)| *mk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null))
        }
        (Value::List(l), Value::Int(n)) => {
            let n = if *n < 0 { l.len() as i64 + n } else { *n };
            Ok(usize::try_from(n)
                .ok()
                .and_then(|n| l.get(n))
                .cloned()
                .unwrap_or(Value::Null))
        }
        (Value::Null, _) => Err(EvalError::new("cannot index null")),
        (other, _) => Err(EvalError::new(format!(
            "cannot index a {}",
            other.type_name()
        ))),
    }
}

fn str_arg(args: &[Value], i: usize, name: &str) -> EvalResult<String> {
    match args.get(i) {
        Some(Value::Null) | None => {
            Err(EvalError::new(format!("'{name}' needs argument {}", i + 1)))
        }
        Some(v) => Ok(v.render()),
    }
}

fn int_arg(args: &[Value], i: usize, name: &str) -> EvalResult<i64> {
    args.get(i)
        .and_then(Value::as_f64)
        .map(|f| f as i64)
        .ok_or_else(|| EvalError::new(format!("'{name}' needs a number as argument {}", i + 1)))
}

fn method(t: &Value, name: &str, args: &[Value], regexes: &RegexCache) -> EvalResult<Value> {
    if name == "toString" && args.is_empty() {
        return Ok(Value::Str(t.render()));
    }
    if name == "equals" && args.len() == 1 {
        return Ok(Value::Bool(equals(t, &args[0])));
    }
    match t {
        Value::Str(s) => string_method(s, name, args, regexes),
        Value::Map(m) => match (name, args) {
            ("get", [k]) => index_value(t, k),
            ("getOrDefault", [k, d]) => {
                let k = k.render();
                Ok(m.iter()
                    .find(|(mk, _)| *mk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| d.clone()))
            }
            ("containsKey", [k]) => {
                let k = k.render();
                Ok(Value::Bool(m.iter().any(|(mk, _)| *mk == k)))
            }
            ("size", []) => Ok(Value::Int(m.len() as i64)),
            ("isEmpty", []) => Ok(Value::Bool(m.is_empty())),
            ("keySet", []) => Ok(Value::List(
                m.iter().map(|(k, _)| Value::Str(k.clone())).collect(),
            )),
            ("values", []) => Ok(Value::List(m.iter().map(|(_, v)| v.clone()).collect())),
            ("remove" | "put" | "putAll" | "clear", _) => {
                let mut copy = m.clone();
                map_mutate(&mut copy, name, args)
            }
            _ => Err(EvalError::new(format!("unknown map method '{name}'"))),
        },
        Value::List(l) => match (name, args) {
            ("contains", [v]) => Ok(Value::Bool(l.iter().any(|x| equals(x, v)))),
            ("size", []) => Ok(Value::Int(l.len() as i64)),
            ("isEmpty", []) => Ok(Value::Bool(l.is_empty())),
            ("get", [i]) => index_value(t, i),
            ("join", [sep]) => Ok(Value::Str(
                l.iter()
                    .map(Value::render)
                    .collect::<Vec<_>>()
                    .join(&sep.render()),
            )),
            _ => Err(EvalError::new(format!("unknown list method '{name}'"))),
        },
        Value::Class(c) if c == "ProcessRegistry" => Err(EvalError::new(format!(
            "ProcessRegistry.{name} is not supported (no process registry in Skylark)"
        ))),
        Value::Int(_) | Value::Float(_) => match name {
            "intValue" | "longValue" | "toInteger" | "toLong" => {
                Ok(Value::Int(t.as_f64().unwrap_or(0.0) as i64))
            }
            "doubleValue" | "toDouble" => Ok(Value::Float(t.as_f64().unwrap_or(0.0))),
            _ => Err(EvalError::new(format!("unknown number method '{name}'"))),
        },
        other => Err(EvalError::new(format!(
            "cannot call '{name}' on a {}",
            other.type_name()
        ))),
    }
}

fn string_method(s: &str, name: &str, args: &[Value], regexes: &RegexCache) -> EvalResult<Value> {
    let v = match name {
        "trim" => Value::Str(s.trim().to_string()),
        "toLowerCase" => Value::Str(s.to_lowercase()),
        "toUpperCase" => Value::Str(s.to_uppercase()),
        "length" | "size" => Value::Int(s.chars().count() as i64),
        "isEmpty" => Value::Bool(s.is_empty()),
        "isBlank" => Value::Bool(s.trim().is_empty()),
        "startsWith" => Value::Bool(s.starts_with(&str_arg(args, 0, name)?)),
        "endsWith" => Value::Bool(s.ends_with(&str_arg(args, 0, name)?)),
        "contains" => Value::Bool(s.contains(&str_arg(args, 0, name)?)),
        "equalsIgnoreCase" => Value::Bool(s.eq_ignore_ascii_case(&str_arg(args, 0, name)?)),
        "indexOf" => Value::Int(
            s.find(&str_arg(args, 0, name)?)
                .map(|b| s[..b].chars().count() as i64)
                .unwrap_or(-1),
        ),
        "lastIndexOf" => Value::Int(
            s.rfind(&str_arg(args, 0, name)?)
                .map(|b| s[..b].chars().count() as i64)
                .unwrap_or(-1),
        ),
        "concat" => Value::Str(format!("{s}{}", str_arg(args, 0, name)?)),
        "replace" => Value::Str(s.replace(&str_arg(args, 0, name)?, &str_arg(args, 1, name)?)),
        "replaceAll" => {
            let re = regexes.get(&str_arg(args, 0, name)?, false)?;
            let rep = java_replacement(&str_arg(args, 1, name)?);
            Value::Str(re.replace_all(s, rep.as_str()).into_owned())
        }
        "replaceFirst" => {
            let re = regexes.get(&str_arg(args, 0, name)?, false)?;
            let rep = java_replacement(&str_arg(args, 1, name)?);
            Value::Str(re.replace(s, rep.as_str()).into_owned())
        }
        "matches" => Value::Bool(regexes.get(&str_arg(args, 0, name)?, true)?.is_match(s)),
        "split" => {
            let re = regexes.get(&str_arg(args, 0, name)?, false)?;
            let mut parts: Vec<Value> = re.split(s).map(|p| Value::Str(p.to_string())).collect();
            // Java drops trailing empty strings.
            while parts.len() > 1 && parts.last() == Some(&Value::Str(String::new())) {
                parts.pop();
            }
            Value::List(parts)
        }
        "substring" => {
            let chars: Vec<char> = s.chars().collect();
            let from = int_arg(args, 0, name)?;
            let to = if args.len() > 1 {
                int_arg(args, 1, name)?
            } else {
                chars.len() as i64
            };
            if from < 0 || to > chars.len() as i64 || from > to {
                return Err(EvalError::new(format!(
                    "substring({from}, {to}) out of range for '{s}'"
                )));
            }
            Value::Str(chars[from as usize..to as usize].iter().collect())
        }
        "toInteger" | "toLong" => Value::Int(
            s.trim()
                .parse()
                .map_err(|_| EvalError::new(format!("'{s}' is not an integer")))?,
        ),
        "toDouble" => Value::Float(
            s.trim()
                .parse()
                .map_err(|_| EvalError::new(format!("'{s}' is not a number")))?,
        ),
        _ => return Err(EvalError::new(format!("unknown string method '{name}'"))),
    };
    Ok(v)
}

/// Methods closures may call on values; the compiler rejects others.
pub(crate) const CLOSURE_METHODS: &[&str] = &[
    "toString",
    "equals",
    "get",
    "getOrDefault",
    "containsKey",
    "size",
    "isEmpty",
    "keySet",
    "values",
    "remove",
    "put",
    "putAll",
    "clear",
    "contains",
    "join",
    "intValue",
    "longValue",
    "toInteger",
    "toLong",
    "doubleValue",
    "toDouble",
    "trim",
    "toLowerCase",
    "toUpperCase",
    "length",
    "isBlank",
    "startsWith",
    "endsWith",
    "equalsIgnoreCase",
    "indexOf",
    "lastIndexOf",
    "concat",
    "replace",
    "replaceAll",
    "replaceFirst",
    "matches",
    "split",
    "substring",
    "generateVirtualLocalProcess",
    "generateVirtualRemoteProcess",
];

pub(crate) fn equals(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> EvalResult<std::cmp::Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x
                .partial_cmp(&y)
                .ok_or_else(|| EvalError::new("cannot compare NaN")),
            _ => Err(EvalError::new(format!(
                "cannot compare a {} with a {}",
                a.type_name(),
                b.type_name()
            ))),
        },
    }
}

fn numeric(op: BinOp, a: &Value, b: &Value) -> EvalResult<Value> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        match op {
            BinOp::Add => return Ok(Value::Int(x.wrapping_add(*y))),
            BinOp::Sub => return Ok(Value::Int(x.wrapping_sub(*y))),
            BinOp::Mul => return Ok(Value::Int(x.wrapping_mul(*y))),
            // Java's long arithmetic wraps: `Long.MIN_VALUE % -1` is 0, not an error.
            BinOp::Mod if *y != 0 => return Ok(Value::Int(x.wrapping_rem(*y))),
            _ => {}
        }
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Err(EvalError::new(format!(
            "operator {op:?} does not apply to a {} and a {}",
            a.type_name(),
            b.type_name()
        )));
    };
    Ok(Value::Float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Mod => x % y,
        _ => return Err(EvalError::new(format!("operator {op:?} is not arithmetic"))),
    }))
}

/// Groovy semantics of a binary operator on plain values (sample families are handled by the
/// MAL evaluator before this).
pub(crate) fn binary(op: BinOp, l: &Value, r: &Value, regexes: &RegexCache) -> EvalResult<Value> {
    use std::cmp::Ordering::*;
    Ok(match op {
        BinOp::Eq => Value::Bool(equals(l, r)),
        BinOp::NotEq => Value::Bool(!equals(l, r)),
        BinOp::Lt => Value::Bool(compare(l, r)? == Less),
        BinOp::Le => Value::Bool(compare(l, r)? != Greater),
        BinOp::Gt => Value::Bool(compare(l, r)? == Greater),
        BinOp::Ge => Value::Bool(compare(l, r)? != Less),
        BinOp::And => Value::Bool(l.truthy() && r.truthy()),
        BinOp::Or => Value::Bool(l.truthy() || r.truthy()),
        BinOp::In => match r {
            Value::List(items) => Value::Bool(items.iter().any(|i| equals(i, l))),
            Value::Map(m) => Value::Bool(m.iter().any(|(k, _)| *k == l.render())),
            Value::Str(s) => Value::Bool(s.contains(&l.render())),
            Value::Null => Value::Bool(false),
            other => {
                return Err(EvalError::new(format!(
                    "'in' does not apply to a {}",
                    other.type_name()
                )))
            }
        },
        BinOp::RegexFind | BinOp::RegexMatch => {
            if *l == Value::Null {
                Value::Bool(false)
            } else {
                let re = regexes.get(&r.render(), op == BinOp::RegexMatch)?;
                Value::Bool(re.is_match(&l.render()))
            }
        }
        BinOp::Add => match (l, r) {
            (Value::Str(a), b) => Value::Str(format!("{a}{}", b.render())),
            (a, Value::Str(b)) => Value::Str(format!("{}{b}", a.render())),
            (Value::List(a), Value::List(b)) => Value::List(a.iter().chain(b).cloned().collect()),
            _ => numeric(op, l, r)?,
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => numeric(op, l, r)?,
    })
}

fn cast(v: Value, ty: &str) -> EvalResult<Value> {
    if v == Value::Null {
        return Ok(Value::Null);
    }
    Ok(match ty {
        "String" => Value::Str(v.render()),
        "Integer" | "int" | "Long" | "long" | "Short" | "short" => match &v {
            Value::Str(s) => Value::Int(
                s.trim()
                    .parse()
                    .map_err(|_| EvalError::new(format!("cannot cast '{s}' to {ty}")))?,
            ),
            other => Value::Int(other.as_f64().ok_or_else(|| {
                EvalError::new(format!("cannot cast a {} to {ty}", other.type_name()))
            })? as i64),
        },
        "Double" | "double" | "Float" | "float" | "BigDecimal" | "Number" => match &v {
            Value::Str(s) => Value::Float(
                s.trim()
                    .parse()
                    .map_err(|_| EvalError::new(format!("cannot cast '{s}' to {ty}")))?,
            ),
            other => Value::Float(other.as_f64().ok_or_else(|| {
                EvalError::new(format!("cannot cast a {} to {ty}", other.type_name()))
            })?),
        },
        "Boolean" | "boolean" => Value::Bool(match &v {
            Value::Str(s) => s == "true",
            other => other.truthy(),
        }),
        "Map" | "List" | "Object" | "def" => v,
        other => return Err(EvalError::new(format!("unknown type '{other}' in 'as'"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;
    use crate::span::Part;

    fn run(src: &str, tags: &[(&str, &str)]) -> (Value, Value) {
        let e = parse(src, Part::Exp).unwrap();
        let ExprKind::Closure(c) = e.kind else {
            panic!()
        };
        let cache = RegexCache::default();
        let mut i = Interp::new(&cache);
        let labels: skylark_core::Labels = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (r, params) = i.call(&c, vec![Value::from_labels(&labels)]).unwrap();
        (r, params[0].clone())
    }

    #[test]
    fn missing_tag_is_null_and_compares_false() {
        let (r, _) = run("{ tags -> tags.miniprogram_platform == 'wechat' }", &[]);
        assert_eq!(r, Value::Bool(false));
        let (r, _) = run(
            "{ tags -> tags.miniprogram_platform == 'wechat' }",
            &[("miniprogram_platform", "wechat")],
        );
        assert_eq!(r, Value::Bool(true));
    }

    #[test]
    fn assignment_mutates_tags_and_concatenates_null_as_text() {
        let (_, tags) = run("{tags -> tags.cluster = 'k8s::' + tags.cluster}", &[]);
        assert_eq!(tags.to_labels().unwrap().get("cluster"), Some("k8s::null"));
    }

    #[test]
    fn safe_navigation_elvis_and_replace_all() {
        let (r, _) = run(
            "{ tags -> tags['n']?.replaceAll('[.:].*', '') ?: 'none' }",
            &[("n", "pod-1.svc:80")],
        );
        assert_eq!(r, Value::Str("pod-1".into()));
        let (r, _) = run(
            "{ tags -> tags['n']?.replaceAll('[.:].*', '') ?: 'none' }",
            &[],
        );
        assert_eq!(r, Value::Str("none".into()));
    }

    #[test]
    fn local_variables_if_else_chain_and_in() {
        let src = "{ tags ->\n String r = ''\n if (tags.p == 'http' && tags.s == 'true') {\n r = 'a'\n } else if (tags.p in ['http', 'h2']) { r = 'b' } else { r = 'c' }\n tags['c'] = r\n }";
        let (_, tags) = run(src, &[("p", "h2")]);
        assert_eq!(tags.to_labels().unwrap().get("c"), Some("b"));
    }

    #[test]
    fn remove_changes_the_map() {
        let (_, tags) = run(
            "{tags -> tags.remove('condition')}",
            &[("condition", "x"), ("a", "b")],
        );
        assert!(!tags.to_labels().unwrap().contains_key("condition"));
    }

    fn reads(src: &str) -> Option<Vec<String>> {
        let e = parse(src, Part::Exp).unwrap();
        let ExprKind::Closure(c) = e.kind else {
            panic!()
        };
        label_reads(&c)
    }

    #[test]
    fn label_reads_only_for_closures_that_just_read_labels() {
        assert_eq!(
            reads("{ tags -> tags.job_name == 'x' && tags?.b != null || tags['c'] in ['1'] }"),
            Some(vec!["job_name".into(), "b".into(), "c".into()])
        );
        assert_eq!(reads("{ it.a.startsWith('x') }"), Some(vec!["a".into()]));
        // The map itself escapes, is changed, or its name is reused: all labels are needed.
        for src in [
            "{ tags -> tags.size() > 1 }",
            "{ tags -> tags.a = 'x' }",
            "{ tags -> tags.remove('a') }",
            "{ tags -> def t = tags; t.a == 'x' }",
            "{ tags -> tags[tags.k] == 'x' }",
            "{ tags -> def tags = [:]; tags.a == null }",
            "{ a, b -> a.x == b.y }",
        ] {
            assert_eq!(reads(src), None, "{src}");
        }
    }

    #[test]
    fn a_closure_sees_the_same_labels_whole_or_projected() {
        let src = "{ tags -> tags.a == 'x' ? tags['b'] : (tags.missing ?: 'none') }";
        let e = parse(src, Part::Exp).unwrap();
        let ExprKind::Closure(c) = e.kind else {
            panic!()
        };
        let keys = label_reads(&c).unwrap();
        let cache = RegexCache::default();
        for pairs in [
            &[("a", "x"), ("b", "1"), ("z", "9")][..],
            &[("a", "y")],
            &[],
        ] {
            let labels: skylark_core::Labels = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let whole = Interp::new(&cache)
                .call(&c, vec![Value::from_labels(&labels)])
                .unwrap()
                .0;
            let some = Interp::new(&cache)
                .call(&c, vec![Value::from_some_labels(&labels, &keys)])
                .unwrap()
                .0;
            assert_eq!(whole, some, "{pairs:?}");
        }
    }

    #[test]
    fn java_double_format() {
        assert_eq!(java_double(10.0), "10.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(1e10), "1.0E10");
    }
}
