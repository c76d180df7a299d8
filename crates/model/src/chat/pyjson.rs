//! JSON written as Python's `json.dumps` writes it, for the templates' `tojson` filter.
//!
//! Hugging Face renders chat templates with a `tojson` of its own (`json.dumps(x,
//! ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)`), and tool
//! definitions reach the prompt through it. minijinja's built-in `tojson` writes compact JSON with
//! HTML escapes (`\u003c` for `<`), so a prompt rendered with it would differ from the one the model
//! was tuned on. This writer matches Python: `", "` and `": "` between items (`","` and
//! indentation when `indent` is given), non-ASCII characters as they are, keys in insertion order
//! unless sorted, floats as Python's `repr` writes them (`1.0`, `1e-05`, `1e+20`).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// How [`to_string`] lays out its output: `json.dumps`'s `indent`, `separators`, `sort_keys`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Newlines and this many spaces per level (`json.dumps(indent=n)`), or all on one line.
    pub indent: Option<usize>,
    /// Between items and between a key and its value; Python's defaults when `None`.
    pub separators: Option<(String, String)>,
    /// Object keys in sorted order instead of as given.
    pub sort_keys: bool,
}

/// `value` as `json.dumps(value, ensure_ascii=False, …)` writes it.
pub fn to_string(value: &serde_json::Value, options: &Options) -> String {
    let (item, key) = options.separators.clone().unwrap_or_else(|| {
        let item = if options.indent.is_some() { "," } else { ", " };
        (item.to_string(), ": ".to_string())
    });
    let sorted;
    let value = if options.sort_keys {
        sorted = sort_keys(value);
        &sorted
    } else {
        value
    };
    let mut out = Vec::new();
    let formatter = PyFormatter { indent: options.indent, item, key, depth: 0, has_value: false };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Writing a `Value` into memory cannot fail.
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

fn sort_keys(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sort_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

struct PyFormatter {
    indent: Option<usize>,
    item: String,
    key: String,
    depth: usize,
    has_value: bool,
}

impl PyFormatter {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        if let Some(n) = self.indent {
            w.write_all(b"\n")?;
            for _ in 0..n * self.depth {
                w.write_all(b" ")?;
            }
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        self.has_value = true;
        w.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(self.item.as_bytes())?;
        }
        self.newline(w)
    }
}

impl Formatter for PyFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(self.key.as_bytes())
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float(value).as_bytes())
    }
    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(python_float(f64::from(value)).as_bytes())
    }
    fn write_char_escape<W: ?Sized + Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        // Python escapes the same set (`"`, `\`, control characters) the same way, except that
        // it writes `\u007f`'s neighbours as they are and hex digits in lower case, as serde does.
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }
}

/// `value` as Python's `str()` prints it inside a template (`{{ x }}`): `None`, `True`,
/// `False`, numbers as `repr`, and containers as `repr` — `{'k': 'v', 'n': [1, 2.5, None]}`,
/// strings inside them quoted as Python quotes them. A top-level string is printed as it is.
pub fn python_str(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            python_repr(other, &mut out);
            out
        }
    }
}

fn python_repr(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value as V;
    match value {
        V::Null => out.push_str("None"),
        V::Bool(true) => out.push_str("True"),
        V::Bool(false) => out.push_str("False"),
        V::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f).replace("Infinity", "inf").replace("NaN", "nan")),
            _ => out.push_str(&n.to_string()),
        },
        V::String(s) => string_repr(s, out),
        V::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(v, out);
            }
            out.push(']');
        }
        V::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string_repr(k, out);
                out.push_str(": ");
                python_repr(v, out);
            }
            out.push('}');
        }
    }
}

/// A string as Python's `repr`: single quotes unless it holds `'` and no `"`; backslashes,
/// the quote, and control characters escaped.
fn string_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// `text` with every non-ASCII character written as `\uXXXX` (UTF-16 units, surrogate pairs
/// past the first plane), as `json.dumps(ensure_ascii=True)` writes it. Such characters only
/// occur inside JSON strings, so the text stays the same JSON.
pub fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A float as Python's `repr`: the shortest digits that round-trip, in positional notation for
/// exponents from −4 to 15 (with `.0` when whole), else `d.ddde±XX`.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e-5", "1e20".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{x}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dumps(v: serde_json::Value) -> String {
        to_string(&v, &Options::default())
    }

    #[test]
    fn compact_form_has_pythons_spaces_and_keeps_key_order() {
        let v: serde_json::Value = serde_json::from_str(r#"{"z": 1, "a": [1, 2.5, true, null], "m": {}}"#).unwrap();
        assert_eq!(dumps(v.clone()), r#"{"z": 1, "a": [1, 2.5, true, null], "m": {}}"#);
        let sorted = to_string(&v, &Options { sort_keys: true, ..Options::default() });
        assert_eq!(sorted, r#"{"a": [1, 2.5, true, null], "m": {}, "z": 1}"#);
    }

    #[test]
    fn indented_form_matches_pythons() {
        let v = json!({"name": "f", "list": [1, {"b": []}], "empty": {}});
        let text = to_string(&v, &Options { indent: Some(4), ..Options::default() });
        // json.dumps({"name": "f", "list": [1, {"b": []}], "empty": {}}, indent=4)
        assert_eq!(text, "{\n    \"name\": \"f\",\n    \"list\": [\n        1,\n        {\n            \"b\": []\n        }\n    ],\n    \"empty\": {}\n}");
        let two = to_string(&json!([1, 2]), &Options { indent: Some(2), ..Options::default() });
        assert_eq!(two, "[\n  1,\n  2\n]");
    }

    #[test]
    fn strings_keep_non_ascii_and_escape_like_python() {
        assert_eq!(dumps(json!("héllo <b> & 'q' \"x\" \\ \n\t\u{1}")), r#""héllo <b> & 'q' \"x\" \\ \n\t\u0001""#);
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        for (x, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e300, "1.5e+300"),
            (123456.789, "123456.789"),
        ] {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn ensure_ascii_escapes_like_python() {
        // json.dumps("é😀") == '"\\u00e9\\ud83d\\ude00"'
        assert_eq!(ascii_escaped(&dumps(json!("é😀"))), r#""\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn containers_print_as_python_does() {
        let v = json!({"type": "function", "ok": true, "none": null, "n": [1, 2.5, "it's", "say \"hi\"\n"]});
        // str({'type': 'function', 'ok': True, 'none': None, 'n': [1, 2.5, "it's", 'say "hi"\n']})
        assert_eq!(
            python_str(&v),
            r#"{'type': 'function', 'ok': True, 'none': None, 'n': [1, 2.5, "it's", 'say "hi"\n']}"#
        );
        assert_eq!(python_str(&json!("plain")), "plain");
        assert_eq!(python_str(&json!(null)), "None");
        assert_eq!(python_str(&json!([])), "[]");
    }

    #[test]
    fn custom_separators_are_used() {
        let v = json!({"a": [1, 2]});
        let o = Options { separators: Some((",".into(), ":".into())), ..Options::default() };
        assert_eq!(to_string(&v, &o), r#"{"a":[1,2]}"#);
    }
}
