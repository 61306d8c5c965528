//! The `tinykv-sql` shell: runs SQL from `-e`, a pipe, or an interactive prompt, and prints
//! results as tables.

use std::collections::BTreeSet;
use std::io::{self, BufRead, IsTerminal, Write};

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::Table;
use gluesql_core::executor::{Payload, PayloadVariable};
use gluesql_core::prelude::Value;

use crate::errors::Result;
use crate::session::Session;

/// How a payload prints.
pub fn render(payload: &Payload) -> String {
    match payload {
        Payload::Select { labels, rows } => {
            let rows = rows.iter().map(|r| r.iter().map(cell).collect());
            table(labels.clone(), rows, rows_footer(labels.len(), payload))
        }
        Payload::SelectMap(maps) => {
            let labels: Vec<String> = maps
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let rows = maps.iter().map(|m| {
                labels
                    .iter()
                    .map(|l| m.get(l).map_or_else(String::new, cell))
                    .collect()
            });
            table(labels.clone(), rows, rows_footer(labels.len(), payload))
        }
        Payload::ShowColumns(columns) => {
            let rows = columns
                .iter()
                .map(|(name, data_type)| vec![name.clone(), data_type.to_string()]);
            table(vec!["Field".into(), "Type".into()], rows, String::new())
        }
        Payload::ShowVariable(PayloadVariable::Tables(names)) => {
            let rows = names.iter().map(|n| vec![n.clone()]);
            table(vec!["table".into()], rows, String::new())
        }
        Payload::ShowVariable(PayloadVariable::Functions(names)) => {
            let rows = names.iter().map(|n| vec![n.clone()]);
            table(vec!["function".into()], rows, String::new())
        }
        Payload::ShowVariable(PayloadVariable::Version(v)) => v.clone(),
        Payload::Insert(n) => format!("{n} row{} inserted", plural(*n)),
        Payload::Update(n) => format!("{n} row{} updated", plural(*n)),
        Payload::Delete(n) => format!("{n} row{} deleted", plural(*n)),
        Payload::DropTable(n) => format!("{n} table{} dropped", plural(*n)),
        Payload::Create => "table created".into(),
        Payload::AlterTable => "table altered".into(),
        Payload::CreateIndex => "index created".into(),
        Payload::DropIndex => "index dropped".into(),
        Payload::DropFunction => "function dropped".into(),
        Payload::StartTransaction => "BEGIN".into(),
        Payload::Commit => "COMMIT".into(),
        Payload::Rollback => "ROLLBACK".into(),
    }
}

fn cell(v: &Value) -> String {
    String::from(v)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn rows_footer(_columns: usize, payload: &Payload) -> String {
    let n = match payload {
        Payload::Select { rows, .. } => rows.len(),
        Payload::SelectMap(rows) => rows.len(),
        _ => 0,
    };
    format!("({n} row{})", plural(n))
}

fn table(labels: Vec<String>, rows: impl Iterator<Item = Vec<String>>, footer: String) -> String {
    let mut t = Table::new();
    t.load_preset(ASCII_MARKDOWN).set_header(labels);
    for row in rows {
        t.add_row(row);
    }
    if footer.is_empty() {
        t.to_string()
    } else {
        format!("{t}\n{footer}")
    }
}

/// Runs every statement of `sql`, printing each result to `out`; stops at the first error,
/// which is printed to `err`. Returns whether everything succeeded.
pub fn run_script(
    session: &mut Session,
    sql: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<bool> {
    let statements = match Session::parse(sql) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(false);
        }
    };
    for statement in &statements {
        match session.execute_statement(statement) {
            Ok(payload) => writeln!(out, "{}", render(&payload))?,
            Err(e) => {
                writeln!(err, "error: {e}")?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Reads statements until end of input: an interactive prompt on a terminal (a statement ends
/// with `;`, `\q` quits), the whole input as one script otherwise. Returns whether every
/// statement of a non-interactive script succeeded.
pub fn run_input(session: &mut Session) -> Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        let mut sql = String::new();
        for line in stdin.lock().lines() {
            let line = line.map_err(|e| crate::Error::Backend(format!("reading stdin: {e}")))?;
            sql.push_str(&line);
            sql.push('\n');
        }
        return run_script(session, &sql, &mut io::stdout(), &mut io::stderr())
            .map_err(|e| crate::Error::Backend(format!("writing output: {e}")));
    }
    interactive(session)?;
    Ok(true)
}

fn interactive(session: &mut Session) -> Result<()> {
    let io_err = |e: rustyline::error::ReadlineError| crate::Error::Backend(e.to_string());
    let mut editor = rustyline::DefaultEditor::new().map_err(io_err)?;
    let mut buffer = String::new();
    println!("tinykv-sql: statements end with ';', \\q quits");
    loop {
        let prompt = match (buffer.is_empty(), session.in_transaction()) {
            (true, false) => "sql> ",
            (true, true) => "sql*> ",
            (false, _) => "  -> ",
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(io_err(e)),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            return Ok(());
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        let sql = std::mem::take(&mut buffer);
        run_script(session, &sql, &mut io::stdout(), &mut io::stdout())
            .map_err(|e| crate::Error::Backend(format!("writing output: {e}")))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_render_as_tables() {
        let payload = Payload::Select {
            labels: vec!["id".into(), "v".into()],
            rows: vec![
                vec![Value::I64(1), Value::Str("a".into())],
                vec![Value::I64(2), Value::Null],
            ],
        };
        let text = render(&payload);
        assert!(text.contains("| id | v    |"), "{text}");
        assert!(text.contains("| 2  | NULL |"), "{text}");
        assert!(text.ends_with("(2 rows)"), "{text}");
        assert_eq!(render(&Payload::Insert(1)), "1 row inserted");
    }
}
