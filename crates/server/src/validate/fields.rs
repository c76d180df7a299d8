//! Typed reads of a JSON object's fields, each failure a 400 naming the field.
//!
//! `null` counts as absent everywhere, as OpenAI's API treats it.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The fields of one JSON object.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Prefix for parameter names in errors (`messages[2].`), empty at the top.
    prefix: String,
}

/// The JSON type of `v`, in words.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A 400 saying `param` has the wrong type.
pub fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(param, format!("`{param}` must be {expected}, not {}", type_name(got)))
}

/// `value` as an object, or a 400 for `param`.
pub fn object<'a>(param: &str, value: &'a Value) -> Result<Fields<'a>, ApiError> {
    match value {
        Value::Object(map) => {
            Ok(Fields { map, prefix: if param.is_empty() { String::new() } else { format!("{param}.") } })
        }
        other => Err(wrong_type(if param.is_empty() { "body" } else { param }, "a JSON object", other)),
    }
}

impl<'a> Fields<'a> {
    /// The full parameter name of field `name`.
    pub fn param(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The field's value, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(&self.param(name), "a string", v)),
        }
    }

    /// A required string field.
    pub fn required_string(&self, name: &str) -> Result<&'a str, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::invalid(self.param(name), format!("`{}` is required", self.param(name))))
    }

    /// A boolean field.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(&self.param(name), "a boolean", v)),
        }
    }

    /// A number field within `[lo, hi]` (or `(lo, hi]` with `open_lo`).
    pub fn number(&self, name: &str, lo: f64, hi: f64, open_lo: bool) -> Result<Option<f32>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let x = v.as_f64().ok_or_else(|| wrong_type(&self.param(name), "a number", v))?;
        // The value is used as an f32: an open bound must hold after rounding
        // (`top_p: 5e-324` would become 0), so it is the smallest f32 above `lo`.
        let ok = x.is_finite() && (if open_lo { x >= open_lower_bound(lo) } else { x >= lo }) && x <= hi;
        if !ok {
            let range = if open_lo { format!("({lo}, {hi}]") } else { format!("[{lo}, {hi}]") };
            return Err(out_of_range(&self.param(name), v, &range));
        }
        Ok(Some(x as f32))
    }

    /// An integer field within `[lo, hi]`.
    pub fn integer(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let x = match v {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            // Beyond i64: an integer, but out of every range we accept.
            Value::Number(n) if n.is_u64() => None,
            _ => return Err(wrong_type(&self.param(name), "an integer", v)),
        };
        match x {
            Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(out_of_range(&self.param(name), v, &format!("[{lo}, {hi}]"))),
        }
    }

    /// An unsigned 64-bit seed: any JSON integer (negative ones wrap, as a
    /// two's-complement reinterpretation).
    pub fn seed(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        match v {
            Value::Number(n) if n.is_u64() => Ok(n.as_u64()),
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().map(|i| i as u64)),
            _ => Err(wrong_type(&self.param(name), "an integer", v)),
        }
    }

    /// Every field name present (for rejecting unsupported ones).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The least value accepted by a range open at `lo`: the smallest `f32` above
/// it (what `/openapi.json` gives as the minimum).
pub fn open_lower_bound(lo: f64) -> f64 {
    f64::from((lo as f32).next_up())
}

/// A 400 saying `param`'s `value` is outside `range`.
pub fn out_of_range(param: &str, value: &Value, range: &str) -> ApiError {
    ApiError::invalid(param, format!("`{param}` = {value} is out of range {range}"))
}
