//! The `txn exec` language: one statement per line, parsed before anything runs.
//!
//! ```text
//! # transfer 10 from a to b
//! begin pessimistic
//! get acct/a
//! put acct/a 90
//! put acct/b "ten and \"more\""
//! commit
//! ```
//!
//! Words are separated by blanks; a word may be double-quoted, with `\"`, `\\`, `\n`, `\t`,
//! `\r`, `\0` and `\xNN` escapes inside quotes (so any byte string can be written). A word
//! starting with `#` (outside quotes) starts a comment. Keys and values go through the [`Codec`], so `--hex`
//! scripts write hex words.

use crate::cli::MAX_LIMIT;
use crate::errors::{Error, Result};
use crate::format::Codec;

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// Start a transaction explicitly.
    Begin {
        /// Pessimistic rather than optimistic.
        pessimistic: bool,
    },
    /// Read a key.
    Get(Vec<u8>),
    /// Buffer a write.
    Put(Vec<u8>, Vec<u8>),
    /// Buffer a write that fails at commit if the key exists.
    Insert(Vec<u8>, Vec<u8>),
    /// Buffer a delete.
    Delete(Vec<u8>),
    /// Read `[from, to)`, up to `limit` pairs.
    Scan {
        /// First key.
        from: Vec<u8>,
        /// End key (exclusive); empty means the end of the key space.
        to: Vec<u8>,
        /// Most pairs.
        limit: u32,
    },
    /// Commit the open transaction.
    Commit,
    /// Roll the open transaction back.
    Rollback,
}

impl Stmt {
    /// The statement's keyword, as in scripts and JSON output.
    pub fn op(&self) -> &'static str {
        match self {
            Stmt::Begin { .. } => "begin",
            Stmt::Get(_) => "get",
            Stmt::Put(..) => "put",
            Stmt::Insert(..) => "insert",
            Stmt::Delete(_) => "delete",
            Stmt::Scan { .. } => "scan",
            Stmt::Commit => "commit",
            Stmt::Rollback => "rollback",
        }
    }
}

/// Default `limit` of a script `scan`.
pub const DEFAULT_SCAN_LIMIT: u32 = 100;

/// Parses a whole script: `(line number, statement)` pairs, blank and comment lines skipped.
/// The first bad line fails the whole script.
pub fn parse_script(text: &str, codec: Codec) -> Result<Vec<(usize, Stmt)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(stmt) = parse_line(line, codec).map_err(|e| Error::Script {
            line: n,
            source: Box::new(e),
        })? {
            out.push((n, stmt));
        }
    }
    Ok(out)
}

/// Parses one line; `None` for a blank or comment line.
pub fn parse_line(line: &str, codec: Codec) -> Result<Option<Stmt>> {
    let words = split_words(line)?;
    let Some((head, args)) = words.split_first() else {
        return Ok(None);
    };
    let keyword = std::str::from_utf8(head)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let arity = |n: usize, usage: &str| -> Result<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(Error::Usage(format!("usage: {usage}")))
        }
    };
    // Words are bytes (quotes allow any); the codec then reads them as text or hex.
    let bytes = |what: &str, w: &[u8]| -> Result<Vec<u8>> {
        if codec.hex {
            let s =
                std::str::from_utf8(w).map_err(|_| Error::Usage(format!("{what} is not hex")))?;
            codec.parse(what, s)
        } else {
            Ok(w.to_vec())
        }
    };
    let stmt = match keyword.as_str() {
        "begin" => match args {
            [] => Stmt::Begin { pessimistic: false },
            [kind] => match kind.to_ascii_lowercase().as_slice() {
                b"optimistic" => Stmt::Begin { pessimistic: false },
                b"pessimistic" => Stmt::Begin { pessimistic: true },
                _ => return Err(Error::Usage("usage: begin [optimistic|pessimistic]".into())),
            },
            _ => return Err(Error::Usage("usage: begin [optimistic|pessimistic]".into())),
        },
        "get" => {
            arity(1, "get KEY")?;
            Stmt::Get(bytes("key", &args[0])?)
        }
        "put" => {
            arity(2, "put KEY VALUE")?;
            Stmt::Put(bytes("key", &args[0])?, bytes("value", &args[1])?)
        }
        "insert" => {
            arity(2, "insert KEY VALUE")?;
            Stmt::Insert(bytes("key", &args[0])?, bytes("value", &args[1])?)
        }
        "delete" => {
            arity(1, "delete KEY")?;
            Stmt::Delete(bytes("key", &args[0])?)
        }
        "scan" => {
            if args.len() < 2 || args.len() > 3 {
                return Err(Error::Usage(
                    "usage: scan FROM TO [LIMIT]  (\"\" for an open end)".into(),
                ));
            }
            let limit = match args.get(2) {
                None => DEFAULT_SCAN_LIMIT,
                Some(w) => std::str::from_utf8(w)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| Error::Usage(format!("scan limit must be in 1..={MAX_LIMIT}")))?,
            };
            Stmt::Scan {
                from: bytes("key", &args[0])?,
                to: bytes("key", &args[1])?,
                limit,
            }
        }
        "commit" => {
            arity(0, "commit")?;
            Stmt::Commit
        }
        "rollback" => {
            arity(0, "rollback")?;
            Stmt::Rollback
        }
        _ => {
            return Err(Error::Usage(format!(
                "unknown statement {:?}; expected begin, get, put, insert, delete, scan, commit or rollback",
                String::from_utf8_lossy(head)
            )))
        }
    };
    Ok(Some(stmt))
}

/// Splits a line into words (see the module documentation for quoting).
pub fn split_words(line: &str) -> Result<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some('"') => {
                chars.next();
                let mut word = Vec::new();
                loop {
                    match chars.next() {
                        None => return Err(Error::Usage("unterminated quote".into())),
                        Some('"') => break,
                        Some('\\') => word.push(unescape(&mut chars)?),
                        Some(c) => {
                            let mut buf = [0u8; 4];
                            word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                    return Err(Error::Usage("a closing quote must end the word".into()));
                }
                words.push(word);
            }
            Some(_) => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '"' {
                        return Err(Error::Usage("quotes must enclose a whole word".into()));
                    }
                    word.push(c);
                }
                words.push(word.into_bytes());
            }
        }
    }
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<u8> {
    Ok(match chars.next() {
        Some('"') => b'"',
        Some('\\') => b'\\',
        Some('n') => b'\n',
        Some('t') => b'\t',
        Some('r') => b'\r',
        Some('0') => 0,
        Some('x') => {
            let digits: String = (0..2).filter_map(|_| chars.next()).collect();
            u8::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == 2)
                .ok_or_else(|| {
                    Error::Usage(format!("bad escape \\x{digits}: need two hex digits"))
                })?
        }
        Some(c) => return Err(Error::Usage(format!("unknown escape \\{c}"))),
        None => return Err(Error::Usage("unterminated quote".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: Codec = Codec { hex: false };

    fn words(line: &str) -> Vec<Vec<u8>> {
        split_words(line).unwrap()
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            words("  put  a   1 "),
            vec![b"put".to_vec(), b"a".to_vec(), b"1".to_vec()]
        );
        assert_eq!(words("# just a comment"), Vec::<Vec<u8>>::new());
        assert_eq!(
            words("get a # trailing"),
            vec![b"get".to_vec(), b"a".to_vec()]
        );
        assert_eq!(
            words(r#"put "a b" "q\"\\\n\x00\xff""#),
            vec![
                b"put".to_vec(),
                b"a b".to_vec(),
                b"q\"\\\n\x00\xff".to_vec()
            ]
        );
        assert_eq!(
            words(r##"put "" "#x""##),
            vec![b"put".to_vec(), b"".to_vec(), b"#x".to_vec()]
        );
        assert_eq!(words("put é 1")[1], "é".as_bytes());
    }

    #[test]
    fn bad_quoting_is_a_usage_error() {
        for line in [
            r#"put "a"#,
            r#"put "a"b 1"#,
            r#"put a"b 1"#,
            r#"put "\q" 1"#,
            r#"put "\x4" 1"#,
            r#"put "\xzz" 1"#,
        ] {
            let err = split_words(line).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{line}: {err}");
        }
    }

    #[test]
    fn statements() {
        let p = |l: &str| parse_line(l, TEXT).unwrap();
        assert_eq!(p(""), None);
        assert_eq!(
            p("BEGIN Pessimistic"),
            Some(Stmt::Begin { pessimistic: true })
        );
        assert_eq!(p("begin"), Some(Stmt::Begin { pessimistic: false }));
        assert_eq!(p("get k"), Some(Stmt::Get(b"k".to_vec())));
        assert_eq!(p("put k v"), Some(Stmt::Put(b"k".to_vec(), b"v".to_vec())));
        assert_eq!(
            p("insert k v"),
            Some(Stmt::Insert(b"k".to_vec(), b"v".to_vec()))
        );
        assert_eq!(p("delete k"), Some(Stmt::Delete(b"k".to_vec())));
        assert_eq!(
            p(r#"scan a "" 5"#),
            Some(Stmt::Scan {
                from: b"a".to_vec(),
                to: vec![],
                limit: 5
            })
        );
        assert_eq!(
            p("scan a b"),
            Some(Stmt::Scan {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
                limit: DEFAULT_SCAN_LIMIT
            })
        );
        assert_eq!(p("commit"), Some(Stmt::Commit));
        assert_eq!(p("rollback"), Some(Stmt::Rollback));
    }

    #[test]
    fn bad_statements_name_the_problem() {
        for (line, needle) in [
            ("get", "usage: get KEY"),
            ("put k", "usage: put KEY VALUE"),
            ("delete a b", "usage: delete KEY"),
            ("commit now", "usage: commit"),
            ("begin eventually", "usage: begin"),
            ("scan a", "usage: scan"),
            ("scan a b 0", "limit"),
            ("scan a b 99999", "limit"),
            ("upsert k v", "unknown statement \"upsert\""),
        ] {
            let err = parse_line(line, TEXT).unwrap_err().to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }

    #[test]
    fn scripts_report_the_line() {
        let script = "# header\nput a 1\n\nget a\ncommit\n";
        let stmts = parse_script(script, TEXT).unwrap();
        assert_eq!(
            stmts.iter().map(|(n, s)| (*n, s.op())).collect::<Vec<_>>(),
            vec![(2, "put"), (4, "get"), (5, "commit")]
        );
        let err = parse_script("put a 1\nfrobnicate\n", TEXT).unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: unknown statement"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::errors::EXIT_USAGE);
    }

    #[test]
    fn hex_scripts() {
        let hex = Codec { hex: true };
        assert_eq!(
            parse_line("put 00ff 6869", hex).unwrap(),
            Some(Stmt::Put(vec![0, 0xff], b"hi".to_vec()))
        );
        assert!(parse_line("get xyz", hex).is_err());
    }
}
