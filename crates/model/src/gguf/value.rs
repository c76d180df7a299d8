//! Metadata values: the thirteen GGUF value types, arrays of them, and their display.
//!
//! [`ValueType`] is the id as stored in the file (0..=12); [`Value`] and [`Array`]
//! are owned, parsed values. `Display` of a [`Value`] is meant for humans
//! (`seed info`): long arrays and strings are cut short; the alternate form
//! (`{:#}`) prints everything.

use std::fmt;

/// A GGUF value type id (`gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type with id `id`, or `None` outside 0..=12.
    pub(crate) fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The smallest number of bytes one value of this type takes in the file:
    /// its fixed size, a string's length prefix, an array's element type and length.
    pub(crate) fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// One metadata value.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array: all elements share one type.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

impl Value {
    /// The type's name for messages: `u32`, `string`, `array of string`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(a) => a.type_name(),
        }
    }

    /// The value as a wide signed integer, for any integer type.
    pub(crate) fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl Array {
    /// The type's name for messages: `array of u32`, `array of array`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "array of u8",
            Array::I8(_) => "array of i8",
            Array::U16(_) => "array of u16",
            Array::I16(_) => "array of i16",
            Array::U32(_) => "array of u32",
            Array::I32(_) => "array of i32",
            Array::U64(_) => "array of u64",
            Array::I64(_) => "array of i64",
            Array::F32(_) => "array of f32",
            Array::F64(_) => "array of f64",
            Array::Bool(_) => "array of bool",
            Array::String(_) => "array of string",
            Array::Array(_) => "array of array",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Elements shown by the short `Display` form of an array.
const SHOWN_ELEMENTS: usize = 8;
/// Bytes shown by the short `Display` form of a string.
const SHOWN_STRING_BYTES: usize = 120;

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = f.alternate();
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write_str(f, s, full),
            Value::Array(a) => write_array(f, a, full),
        }
    }
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_array(f, self, f.alternate())
    }
}

/// A string, quoted and escaped; cut at a char boundary near
/// [`SHOWN_STRING_BYTES`] unless `full`.
fn write_str(f: &mut fmt::Formatter<'_>, s: &str, full: bool) -> fmt::Result {
    if full || s.len() <= SHOWN_STRING_BYTES {
        return write!(f, "{s:?}");
    }
    let mut cut = SHOWN_STRING_BYTES;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = s.get(..cut).unwrap_or_default();
    write!(f, "{head:?}... ({} bytes in all)", s.len())
}

/// `[a, b, c, ... (N more)]`, nested arrays likewise.
fn write_array(f: &mut fmt::Formatter<'_>, a: &Array, full: bool) -> fmt::Result {
    fn items<T>(
        f: &mut fmt::Formatter<'_>,
        v: &[T],
        full: bool,
        mut one: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
    ) -> fmt::Result {
        let shown = if full { v.len() } else { v.len().min(SHOWN_ELEMENTS) };
        f.write_str("[")?;
        for (i, x) in v.iter().take(shown).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            one(f, x)?;
        }
        if shown < v.len() {
            write!(f, ", ... ({} more)", v.len() - shown)?;
        }
        f.write_str("]")
    }
    match a {
        Array::U8(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::I8(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::U16(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::I16(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::U32(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::I32(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::U64(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::I64(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::F32(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::F64(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::Bool(v) => items(f, v, full, |f, x| write!(f, "{x}")),
        Array::String(v) => items(f, v, full, |f, x| write_str(f, x, full)),
        Array::Array(v) => items(f, v, full, |f, x| write_array(f, x, full)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests an unwrap is an assertion
mod tests {
    use super::*;

    #[test]
    fn ids_cover_0_to_12_and_nothing_else() {
        for id in 0..=12 {
            assert!(ValueType::from_id(id).is_some(), "id {id}");
        }
        assert_eq!(ValueType::from_id(13), None);
        assert_eq!(ValueType::from_id(u32::MAX), None);
    }

    #[test]
    fn display_cuts_long_arrays_and_strings() {
        let v = Value::Array(Array::U32((0..100).collect()));
        assert_eq!(v.to_string(), "[0, 1, 2, 3, 4, 5, 6, 7, ... (92 more)]");
        assert!(format!("{v:#}").ends_with("98, 99]"));
        let s = Value::String("é".repeat(100));
        let short = s.to_string();
        assert!(short.ends_with("... (200 bytes in all)"), "{short}");
        assert_eq!(format!("{s:#}").len(), 202);
        let nested = Value::Array(Array::Array(vec![Array::String(vec!["a".into()])]));
        assert_eq!(nested.to_string(), "[[\"a\"]]");
        assert_eq!(nested.type_name(), "array of array");
    }

    #[test]
    fn integers_widen_without_loss() {
        assert_eq!(Value::I64(-1).as_integer(), Some(-1));
        assert_eq!(Value::U64(u64::MAX).as_integer(), Some(u64::MAX.into()));
        assert_eq!(Value::F32(1.0).as_integer(), None);
    }
}
