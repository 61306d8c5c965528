//! Keys and values on the command line and in output, tables, and the two output modes.
//!
//! Arguments are taken as UTF-8 text, or as hex with `--hex`. Output shows bytes as text when
//! they are printable UTF-8 and escaped (`\x00`, `\n`) otherwise; with `--hex` both tables and
//! JSON carry hex. JSON strings hold the UTF-8 text when the bytes are valid UTF-8 and the
//! escaped form otherwise, so binary data is best handled with `--hex`.

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::Table;
use serde_json::Value as Json;

use crate::errors::{Error, Result, Status};

/// How keys and values are read and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Codec {
    /// Arguments and output are hex.
    pub hex: bool,
}

impl Codec {
    /// The bytes an argument stands for.
    pub fn parse(&self, what: &str, arg: &str) -> Result<Vec<u8>> {
        if !self.hex {
            return Ok(arg.as_bytes().to_vec());
        }
        let digits = arg.strip_prefix("0x").unwrap_or(arg);
        if !digits.len().is_multiple_of(2) {
            return Err(Error::Usage(format!(
                "{what} {arg:?} is not hex: odd number of digits"
            )));
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&digits[i..i + 2], 16)
                    .map_err(|_| Error::Usage(format!("{what} {arg:?} is not hex")))
            })
            .collect()
    }

    /// Bytes for a table or a plain line.
    pub fn text(&self, bytes: &[u8]) -> String {
        if self.hex {
            return hex(bytes);
        }
        match std::str::from_utf8(bytes) {
            Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
            _ => bytes.escape_ascii().to_string(),
        }
    }

    /// Bytes for JSON output.
    pub fn json(&self, bytes: &[u8]) -> Json {
        if self.hex {
            return Json::String(hex(bytes));
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Json::String(s.to_string()),
            Err(_) => Json::String(bytes.escape_ascii().to_string()),
        }
    }
}

/// Lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a command prints: a human form, a JSON form, and the resulting status.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Printed to stdout without `--json` (may be empty).
    pub text: String,
    /// Printed to stdout with `--json`, on one line.
    pub json: Json,
    /// Printed to stderr without `--json` (notes such as "key not found").
    pub note: Option<String>,
    /// Decides the exit code.
    pub status: Status,
}

impl Output {
    /// A successful result.
    pub fn ok(text: impl Into<String>, json: Json) -> Output {
        Output {
            text: text.into(),
            json,
            note: None,
            status: Status::Ok,
        }
    }

    /// A lookup that found nothing.
    pub fn not_found(note: impl Into<String>, json: Json) -> Output {
        Output {
            text: String::new(),
            json,
            note: Some(note.into()),
            status: Status::NotFound,
        }
    }

    /// Writes the chosen form to stdout (and the note to stderr).
    pub fn print(&self, json: bool) {
        if json {
            // Commands that printed as they went (`txn exec`) have nothing left to say.
            if !self.json.is_null() {
                println!("{}", self.json);
            }
        } else {
            if !self.text.is_empty() {
                if self.text.ends_with('\n') {
                    print!("{}", self.text);
                } else {
                    println!("{}", self.text);
                }
            }
            if let Some(note) = &self.note {
                eprintln!("{note}");
            }
        }
    }
}

/// A table with a header row, in the project's one table style.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(ASCII_MARKDOWN).set_header(header);
    t
}

/// "1 pair" / "3 pairs".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("({n} {})", if n == 1 { one } else { many })
}

/// A byte count for humans (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_hex_arguments() {
        let text = Codec::default();
        assert_eq!(text.parse("key", "a b").unwrap(), b"a b");
        let hex = Codec { hex: true };
        assert_eq!(hex.parse("key", "00ff41").unwrap(), vec![0, 0xff, 0x41]);
        assert_eq!(hex.parse("key", "0x6162").unwrap(), b"ab");
        assert_eq!(hex.parse("key", "").unwrap(), b"");
        let err = hex.parse("key", "abc").unwrap_err();
        assert!(
            matches!(err, Error::Usage(ref m) if m.contains("odd")),
            "{err}"
        );
        assert!(hex
            .parse("value", "zz")
            .unwrap_err()
            .to_string()
            .contains("value"));
    }

    #[test]
    fn bytes_are_shown_safely() {
        let c = Codec::default();
        assert_eq!(c.text(b"hello"), "hello");
        assert_eq!(c.text("café".as_bytes()), "café");
        assert_eq!(c.text(b"a\nb"), "a\\nb");
        assert_eq!(c.text(&[0xff, 0x00]), "\\xff\\x00");
        assert_eq!(c.json(b"a\nb"), Json::String("a\nb".into()));
        assert_eq!(c.json(&[0xff]), Json::String("\\xff".into()));
        let h = Codec { hex: true };
        assert_eq!(h.text(b"ab"), "6162");
        assert_eq!(h.json(b"ab"), Json::String("6162".into()));
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
        assert_eq!(count(1, "pair", "pairs"), "(1 pair)");
        assert_eq!(count(0, "pair", "pairs"), "(0 pairs)");
    }

    #[test]
    fn tables_render_as_markdown() {
        let mut t = table(["KEY", "VALUE"]);
        t.add_row(["a", "1"]);
        let s = t.to_string();
        assert!(s.lines().next().unwrap().contains("KEY"), "{s}");
        assert!(s.contains("| a ") && s.contains("| 1 "), "{s}");
    }
}
