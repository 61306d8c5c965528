//! `Store` (reads) and `StoreMut` (schema and row writes).

use std::collections::HashMap;

use gluesql_core::data::{Key, Schema, Value};
use gluesql_core::error::Result;
use gluesql_core::store::{RowIter, Store, StoreMut};

use super::rows::{decode_row, Pager};
use super::sync::{self, RowChange};
use super::{Ctx, SqlStorage, TableRecord};
use crate::errors::Error;

impl Store for SqlStorage {
    fn fetch_schema(&self, table_name: &str) -> Result<Option<Schema>> {
        let record = self.read(|ctx| ctx.table(table_name))?;
        Ok(record.map(|r| r.schema.clone()))
    }

    fn fetch_all_schemas(&self) -> Result<Vec<Schema>> {
        let records = self.read(|ctx| ctx.all_tables())?;
        Ok(records.iter().map(|r| r.schema.clone()).collect())
    }

    fn fetch_data(&self, table_name: &str, key: &Key) -> Result<Option<Vec<Value>>> {
        let row_key = key.to_cmp_be_bytes()?;
        let row = self.read(|ctx| {
            let Some(table) = ctx.table(table_name)? else {
                return Ok(None);
            };
            let key = ctx.keys().row(table.id, &row_key);
            match ctx.get(&key)? {
                Some(bytes) => Ok(Some(decode_row(&key, &bytes)?)),
                None => Ok(None),
            }
        })?;
        Ok(row)
    }

    fn scan_data<'a>(&'a self, table_name: &str) -> Result<RowIter<'a>> {
        match self.read(|ctx| ctx.table(table_name))? {
            Some(table) => Ok(Box::new(Pager::rows(self, table.id))),
            None => Ok(Box::new(std::iter::empty())),
        }
    }
}

impl StoreMut for SqlStorage {
    /// Creates the table, or replaces the schema of an existing one (its data and ids stay).
    fn insert_schema(&mut self, schema: &Schema) -> Result<()> {
        Ok(self.write(|ctx| {
            let record = match ctx.table(&schema.table_name)? {
                Some(existing) => {
                    let mut record = TableRecord::clone(&existing);
                    record.redefine(schema)?;
                    record
                }
                None => ctx.new_table(schema)?,
            };
            ctx.put_table(record)
        })?)
    }

    /// Drops the table: its record, rows, index entries and guards, in this transaction.
    fn delete_schema(&mut self, table_name: &str) -> Result<()> {
        Ok(self.write(|ctx| {
            let Some(table) = ctx.table(table_name)? else {
                return Ok(());
            };
            let (start, end) = ctx.keys().table(table.id);
            ctx.delete_range(&start, &end)?;
            ctx.remove_table_record(table_name)
        })?)
    }

    fn append_data(&mut self, table_name: &str, rows: Vec<Vec<Value>>) -> Result<()> {
        Ok(self.write(|ctx| {
            let table = ctx.existing_table(table_name)?;
            let changes = rows
                .into_iter()
                .map(|row| {
                    Ok(RowChange {
                        row_key: ctx.next_row_key()?,
                        old: None,
                        new: Some(row),
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            sync::apply(ctx, &table, changes)
        })?)
    }

    fn insert_data(&mut self, table_name: &str, rows: Vec<(Key, Vec<Value>)>) -> Result<()> {
        Ok(self.write(|ctx| {
            let table = ctx.existing_table(table_name)?;
            let keyed = rows
                .into_iter()
                .map(|(key, row)| Ok((key.to_cmp_be_bytes()?, Some(row))))
                .collect::<Result<Vec<_>, Error>>()?;
            let changes = with_old_rows(ctx, &table, keyed)?;
            sync::apply(ctx, &table, changes)
        })?)
    }

    fn delete_data(&mut self, table_name: &str, keys: Vec<Key>) -> Result<()> {
        Ok(self.write(|ctx| {
            let table = ctx.existing_table(table_name)?;
            let keyed = keys
                .into_iter()
                .map(|key| Ok((key.to_cmp_be_bytes()?, None)))
                .collect::<Result<Vec<_>, Error>>()?;
            let changes = with_old_rows(ctx, &table, keyed)?;
            sync::apply(ctx, &table, changes)
        })?)
    }
}

/// Pairs each new row version with the stored one (one batched read). A key given twice keeps
/// its last version; deletes of rows that do not exist are dropped.
fn with_old_rows(
    ctx: &mut Ctx<'_>,
    table: &TableRecord,
    rows: Vec<(Vec<u8>, Option<Vec<Value>>)>,
) -> Result<Vec<RowChange>, Error> {
    let full_keys: Vec<Vec<u8>> = rows
        .iter()
        .map(|(k, _)| ctx.keys().row(table.id, k))
        .collect();
    let mut stored: HashMap<Vec<u8>, Vec<u8>> =
        ctx.batch_get(full_keys.clone())?.into_iter().collect();
    let mut changes: Vec<RowChange> = Vec::with_capacity(rows.len());
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for ((row_key, new), full_key) in rows.into_iter().zip(full_keys) {
        if let Some(&at) = seen.get(&row_key) {
            changes[at].new = new;
            continue;
        }
        let old = match stored.remove(&full_key) {
            Some(bytes) => Some(decode_row(&full_key, &bytes)?),
            None => None,
        };
        seen.insert(row_key.clone(), changes.len());
        changes.push(RowChange { row_key, old, new });
    }
    changes.retain(|c| c.old.is_some() || c.new.is_some());
    Ok(changes)
}
