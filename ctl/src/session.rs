//! `txn exec`: runs [`crate::script`] statements against one transaction at a time, from a
//! file, a pipe, or a prompt.
//!
//! Scripts are parsed and checked whole before anything is sent: a syntax error, a `begin`
//! while writes are uncommitted, a `commit` without a transaction, or writes left uncommitted
//! at the end fail with the line number (exit status 2). A `begin` after reads only ends the
//! read-only transaction. At run time the first failing statement stops
//! the script and rolls the open transaction back. At a prompt, a failing statement is
//! reported and the session goes on.

use std::io::{IsTerminal, Read};
use std::path::Path;

use client::{Transaction, TransactionClient, TransactionOptions};
use serde_json::{json, Value as Json};

use crate::ctx::{key_range, Ctx};
use crate::errors::{Error, Result};
use crate::format::{Codec, Output};
use crate::kv::pairs_output;
use crate::script::{parse_line, parse_script, Stmt};

/// Runs the script in `file` (`None` or `-`: stdin, interactively when it is a terminal).
pub async fn exec(ctx: &Ctx, file: Option<&Path>, pessimistic: bool) -> Result<()> {
    let from_stdin = file.is_none_or(|f| f == Path::new("-"));
    if from_stdin && std::io::stdin().is_terminal() {
        return interactive(ctx, pessimistic).await;
    }
    let text = match file {
        Some(path) if !from_stdin => std::fs::read_to_string(path).map_err(|e| Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?,
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Io {
                    what: "reading the script from stdin".into(),
                    source: e,
                })?;
            text
        }
    };
    let stmts = parse_script(&text, ctx.codec)?;
    check_structure(&stmts)?;
    let mut session = Session::new(ctx.txn().await?, ctx.codec, pessimistic);
    for (line, stmt) in stmts {
        match session.exec(line, stmt).await {
            Ok(out) => out.print(ctx.json),
            Err(e) => {
                session.abort().await;
                return Err(Error::Script {
                    line,
                    source: Box::new(e),
                });
            }
        }
    }
    // check_structure allows only a read-only transaction to be open here.
    session.abort().await;
    Ok(())
}

/// Static checks of a parsed script: transactions nest correctly and no write is left
/// uncommitted at the end.
pub fn check_structure(stmts: &[(usize, Stmt)]) -> Result<()> {
    let fail = |line: usize, msg: &str| {
        Err(Error::Script {
            line,
            source: Box::new(Error::Usage(msg.into())),
        })
    };
    // Line of the first write of the open transaction, if any; whether one is open.
    let mut open = false;
    let mut first_write: Option<usize> = None;
    for (line, stmt) in stmts {
        match stmt {
            // A read-only transaction simply ends; one with writes must be finished first.
            Stmt::Begin { .. } if first_write.is_some() => {
                return fail(
                    *line,
                    "begin inside a transaction with uncommitted writes; commit or rollback first",
                )
            }
            Stmt::Commit | Stmt::Rollback if !open => {
                return fail(*line, &format!("{} without a transaction", stmt.op()))
            }
            Stmt::Commit | Stmt::Rollback => {
                open = false;
                first_write = None;
            }
            Stmt::Put(..) | Stmt::Insert(..) | Stmt::Delete(_) => {
                open = true;
                first_write.get_or_insert(*line);
            }
            Stmt::Begin { .. } | Stmt::Get(_) | Stmt::Scan { .. } => open = true,
        }
    }
    match first_write {
        Some(line) => fail(
            line,
            "this write is never committed: end the script with commit (or rollback)",
        ),
        None => Ok(()),
    }
}

/// The open transaction, if any, of a script or prompt.
struct Session {
    client: TransactionClient,
    codec: Codec,
    pessimistic: bool,
    txn: Option<Open>,
}

struct Open {
    txn: Transaction,
    writes: bool,
}

impl Session {
    fn new(client: TransactionClient, codec: Codec, pessimistic: bool) -> Session {
        Session {
            client,
            codec,
            pessimistic,
            txn: None,
        }
    }

    async fn begin(&mut self, pessimistic: bool) -> Result<&mut Open> {
        let options = if pessimistic {
            TransactionOptions::new_pessimistic()
        } else {
            TransactionOptions::new_optimistic()
        };
        let txn = self.client.begin_with_options(options).await?;
        Ok(self.txn.insert(Open { txn, writes: false }))
    }

    /// The open transaction, begun implicitly if there is none.
    async fn open(&mut self) -> Result<&mut Open> {
        if self.txn.is_none() {
            self.begin(self.pessimistic).await?;
        }
        Ok(self.txn.as_mut().expect("just begun"))
    }

    /// Runs one statement; the output carries the line number in its JSON form.
    async fn exec(&mut self, line: usize, stmt: Stmt) -> Result<Output> {
        let c = self.codec;
        let op = stmt.op();
        let (text, mut json) = match stmt {
            Stmt::Begin { pessimistic } => {
                if self.txn.as_ref().is_some_and(|open| open.writes) {
                    return Err(Error::Usage(
                        "the open transaction has uncommitted writes; commit or rollback first"
                            .into(),
                    ));
                }
                // A read-only transaction (an implicit one after a `get`) just ends.
                self.abort().await;
                let ts = self
                    .begin(pessimistic)
                    .await?
                    .txn
                    .start_timestamp()
                    .version();
                let kind = if pessimistic {
                    "pessimistic"
                } else {
                    "optimistic"
                };
                (
                    format!("begin {kind} transaction at {ts}"),
                    json!({"start_ts": ts, "pessimistic": pessimistic}),
                )
            }
            Stmt::Get(key) => {
                let value = self.open().await?.txn.get(key.clone()).await?;
                let text = value
                    .as_deref()
                    .map_or_else(|| "(not found)".to_string(), |v| c.text(v));
                let json = json!({
                    "key": c.json(&key),
                    "found": value.is_some(),
                    "value": value.as_deref().map(|v| c.json(v)),
                });
                (text, json)
            }
            Stmt::Put(key, value) => {
                let open = self.open().await?;
                open.txn.put(key.clone(), value.clone()).await?;
                open.writes = true;
                (
                    String::new(),
                    json!({"key": c.json(&key), "value": c.json(&value)}),
                )
            }
            Stmt::Insert(key, value) => {
                let open = self.open().await?;
                open.txn.insert(key.clone(), value.clone()).await?;
                open.writes = true;
                (
                    String::new(),
                    json!({"key": c.json(&key), "value": c.json(&value)}),
                )
            }
            Stmt::Delete(key) => {
                let open = self.open().await?;
                open.txn.delete(key.clone()).await?;
                open.writes = true;
                (String::new(), json!({"key": c.json(&key)}))
            }
            Stmt::Scan { from, to, limit } => {
                let range = key_range(Some(from), Some(to));
                let pairs = self.open().await?.txn.scan(range, limit).await?;
                let out = pairs_output(c, &pairs, false);
                (out.text, out.json)
            }
            Stmt::Commit => {
                let mut open = self
                    .txn
                    .take()
                    .ok_or_else(|| Error::Usage("commit without a transaction".into()))?;
                match open.txn.commit().await? {
                    Some(ts) => (
                        format!("committed at {}", ts.version()),
                        json!({"commit_ts": ts.version()}),
                    ),
                    None => (
                        "committed (nothing was written)".to_string(),
                        json!({"commit_ts": null}),
                    ),
                }
            }
            Stmt::Rollback => {
                let mut open = self
                    .txn
                    .take()
                    .ok_or_else(|| Error::Usage("rollback without a transaction".into()))?;
                open.txn.rollback().await?;
                ("rolled back".to_string(), json!({}))
            }
        };
        if let Json::Object(map) = &mut json {
            map.insert("line".into(), json!(line));
            map.insert("op".into(), json!(op));
        }
        Ok(Output::ok(text, json))
    }

    /// Rolls the open transaction back, if any; a failure is only reported (its locks expire
    /// after their TTL anyway).
    async fn abort(&mut self) -> bool {
        let Some(mut open) = self.txn.take() else {
            return false;
        };
        if let Err(e) = open.txn.rollback().await {
            eprintln!("warning: rolling the open transaction back failed: {e}");
        }
        open.writes
    }
}

/// A prompt on a terminal: statements run as they are typed; errors are reported and the
/// session goes on. Ctrl-D ends it (rolling back an open transaction), Ctrl-C clears the line.
async fn interactive(ctx: &Ctx, pessimistic: bool) -> Result<()> {
    use rustyline::error::ReadlineError;

    let mut editor = rustyline::DefaultEditor::new().map_err(|e| Error::Io {
        what: "opening the terminal".into(),
        source: std::io::Error::other(e),
    })?;
    let mut session = Session::new(ctx.txn().await?, ctx.codec, pessimistic);
    eprintln!("statements: begin [pessimistic], get K, put K V, insert K V, delete K, scan FROM TO [LIMIT], commit, rollback; Ctrl-D ends");
    let mut line_no = 0;
    loop {
        let prompt = if session.txn.is_some() {
            "txn*> "
        } else {
            "txn> "
        };
        // The client's background tasks (TSO, heartbeats) keep running on the other workers.
        let read = tokio::task::block_in_place(|| editor.readline(prompt));
        let line = match read {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                return Err(Error::Io {
                    what: "reading the terminal".into(),
                    source: std::io::Error::other(e),
                })
            }
        };
        line_no += 1;
        let stmt = match parse_line(&line, ctx.codec) {
            Ok(Some(stmt)) => stmt,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        let _ = editor.add_history_entry(line.as_str());
        match session.exec(line_no, stmt).await {
            Ok(out) => out.print(ctx.json),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if session.abort().await {
        eprintln!("the open transaction was not committed; rolled back");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_script;

    fn check(script: &str) -> Result<()> {
        check_structure(&parse_script(script, Codec::default()).unwrap())
    }

    #[test]
    fn well_formed_scripts_pass() {
        check("put a 1\ncommit\n").unwrap();
        check("begin pessimistic\nget a\nput a 2\ncommit\nput b 1\nrollback\n").unwrap();
        // A read-only transaction may stay open: nothing is lost.
        check("get a\nscan a z\n").unwrap();
        check("get a\nbegin pessimistic\nput a 1\ncommit\n").unwrap();
        check("begin\nbegin\n").unwrap();
        check("").unwrap();
    }

    #[test]
    fn misnested_or_unfinished_scripts_name_the_line() {
        for (script, line, needle) in [
            ("begin\nput a 1\nbegin\n", 3, "begin inside"),
            ("put a 1\nbegin\n", 2, "begin inside"),
            ("commit\n", 1, "commit without"),
            ("put a 1\ncommit\nrollback\n", 3, "rollback without"),
            ("get a\nput a 1\nget b\n", 2, "never committed"),
            ("put a 1\ncommit\n\ndelete b\n", 4, "never committed"),
        ] {
            let err = check(script).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("line {line}: ")),
                "{script:?}: {msg}"
            );
            assert!(msg.contains(needle), "{script:?}: {msg}");
            assert_eq!(err.exit_code(), crate::errors::EXIT_USAGE);
        }
    }
}
