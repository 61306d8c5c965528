//! Output of key-value results, shared by the raw and transactional commands.

use client::KvPair;
use serde_json::{json, Map, Value as Json};

use crate::format::{count, table, Codec, Output};

/// A looked-up value: the value alone on a line, or a "not found" note (exit status 3).
pub fn value_output(codec: Codec, key: &[u8], value: Option<&[u8]>) -> Output {
    match value {
        Some(v) => Output::ok(
            codec.text(v),
            json!({"key": codec.json(key), "found": true, "value": codec.json(v)}),
        ),
        None => Output::not_found(
            format!("key {} not found", codec.text(key)),
            json!({"key": codec.json(key), "found": false, "value": null}),
        ),
    }
}

/// A scan's pairs: a table and a count, or `{"count": n, "pairs": [...]}`.
pub fn pairs_output(codec: Codec, pairs: &[KvPair], keys_only: bool) -> Output {
    let header: &[&str] = if keys_only {
        &["KEY"]
    } else {
        &["KEY", "VALUE"]
    };
    let mut t = table(header.iter().copied());
    let mut rows = Vec::with_capacity(pairs.len());
    for p in pairs {
        let mut row = Map::new();
        row.insert("key".into(), codec.json(p.key.as_bytes()));
        if keys_only {
            t.add_row([codec.text(p.key.as_bytes())]);
        } else {
            t.add_row([codec.text(p.key.as_bytes()), codec.text(&p.value)]);
            row.insert("value".into(), codec.json(&p.value));
        }
        rows.push(Json::Object(row));
    }
    let n = count(pairs.len(), "pair", "pairs");
    let text = if pairs.is_empty() {
        n
    } else {
        format!("{t}\n{n}")
    };
    Output::ok(text, json!({"count": pairs.len(), "pairs": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Status;

    #[test]
    fn found_and_missing_values() {
        let c = Codec::default();
        let found = value_output(c, b"a", Some(b"1"));
        assert_eq!(found.text, "1");
        assert_eq!(found.status, Status::Ok);
        assert_eq!(found.json, json!({"key": "a", "found": true, "value": "1"}));

        let missing = value_output(c, b"a", None);
        assert_eq!(missing.status, Status::NotFound);
        assert!(missing.text.is_empty());
        assert_eq!(missing.note.as_deref(), Some("key a not found"));
        assert_eq!(missing.json["found"], json!(false));
    }

    #[test]
    fn pairs_render_as_a_table_and_json() {
        let c = Codec::default();
        let pairs = vec![KvPair::new("a", "1"), KvPair::new("b\n", vec![0xffu8])];
        let out = pairs_output(c, &pairs, false);
        assert!(out.text.contains("| KEY | VALUE |"), "{}", out.text);
        assert!(out.text.contains("| b\\n | \\xff  |"), "{}", out.text);
        assert!(out.text.ends_with("(2 pairs)"));
        assert_eq!(out.json["count"], json!(2));
        assert_eq!(out.json["pairs"][0], json!({"key": "a", "value": "1"}));

        let keys = pairs_output(c, &pairs, true);
        assert!(!keys.text.contains("VALUE"));
        assert_eq!(keys.json["pairs"][1], json!({"key": "b\n"}));

        let empty = pairs_output(c, &[], false);
        assert_eq!(empty.text, "(0 pairs)");
        assert_eq!(empty.json, json!({"count": 0, "pairs": []}));
    }
}
