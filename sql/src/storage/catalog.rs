//! Table records: GlueSQL's `Schema` plus the ids our keys use.
//!
//! Rows, index entries and guards are keyed by numeric ids (table, column, index), never by
//! names, so renaming a table or a column rewrites one record and no data.

use std::sync::Arc;

use gluesql_core::ast::{ColumnDef, ColumnUniqueOption};
use gluesql_core::chrono::{NaiveDateTime, Utc};
use gluesql_core::data::Schema;
use serde::{Deserialize, Serialize};

use super::{decode_u64, Ctx};
use crate::errors::{Error, Result};

/// What the catalog stores per table (bincode under `P 's' <name>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableRecord {
    pub id: u64,
    pub schema: Schema,
    /// Ids of `schema.column_defs`, position by position (empty when schemaless).
    pub column_ids: Vec<u32>,
    /// Ids of `schema.indexes`, position by position.
    pub index_ids: Vec<u32>,
    /// Next column or index id.
    pub next_id: u32,
    pub created: NaiveDateTime,
}

/// A UNIQUE column that is not the primary key (the row key guards primary keys).
pub(crate) struct UniqueColumn {
    pub position: usize,
    pub id: u32,
    pub name: String,
}

impl TableRecord {
    pub fn name(&self) -> &str {
        &self.schema.table_name
    }

    pub fn column_defs(&self) -> &[ColumnDef] {
        self.schema.column_defs.as_deref().unwrap_or_default()
    }

    pub fn column_names(&self) -> Vec<String> {
        self.column_defs().iter().map(|c| c.name.clone()).collect()
    }

    pub fn unique_columns(&self) -> Vec<UniqueColumn> {
        self.column_defs()
            .iter()
            .zip(&self.column_ids)
            .enumerate()
            .filter(|(_, (c, _))| {
                matches!(c.unique, Some(ColumnUniqueOption { is_primary: false }))
            })
            .map(|(position, (c, id))| UniqueColumn {
                position,
                id: *id,
                name: c.name.clone(),
            })
            .collect()
    }

    pub fn index_id(&self, name: &str) -> Option<u32> {
        self.schema
            .indexes
            .iter()
            .position(|i| i.name == name)
            .map(|p| self.index_ids[p])
    }

    pub fn allocate_id(&mut self) -> Result<u32> {
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or_else(|| {
            Error::Backend(format!("table \"{}\" ran out of column ids", self.name()))
        })?;
        Ok(id)
    }

    /// Adopts `schema` (same table, possibly changed): columns and indexes keep their ids by
    /// name, new ones get fresh ids.
    pub fn redefine(&mut self, schema: &Schema) -> Result<()> {
        let old_columns: Vec<(String, u32)> = self
            .column_names()
            .into_iter()
            .zip(self.column_ids.iter().copied())
            .collect();
        let old_indexes: Vec<(String, u32)> = self
            .schema
            .indexes
            .iter()
            .map(|i| i.name.clone())
            .zip(self.index_ids.iter().copied())
            .collect();
        let find = |list: &[(String, u32)], name: &str| {
            list.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
        };
        let mut column_ids = Vec::new();
        for c in schema.column_defs.as_deref().unwrap_or_default() {
            column_ids.push(match find(&old_columns, &c.name) {
                Some(id) => id,
                None => self.allocate_id()?,
            });
        }
        let mut index_ids = Vec::new();
        for i in &schema.indexes {
            index_ids.push(match find(&old_indexes, &i.name) {
                Some(id) => id,
                None => self.allocate_id()?,
            });
        }
        self.schema = schema.clone();
        self.column_ids = column_ids;
        self.index_ids = index_ids;
        Ok(())
    }
}

impl Ctx<'_> {
    /// The record of `table`, cached for the transaction.
    pub fn table(&mut self, table: &str) -> Result<Option<Arc<TableRecord>>> {
        if let Some(cached) = self.txn.tables.get(table) {
            return Ok(cached.clone());
        }
        let key = self.keys.schema(table);
        let record = match self.get(&key)? {
            Some(bytes) => Some(Arc::new(decode_record(&key, &bytes)?)),
            None => None,
        };
        self.txn.tables.insert(table.to_owned(), record.clone());
        Ok(record)
    }

    /// The record of `table`, or [`Error::TableNotFound`].
    pub fn existing_table(&mut self, table: &str) -> Result<Arc<TableRecord>> {
        self.table(table)?
            .ok_or_else(|| Error::TableNotFound(table.to_owned()))
    }

    /// Every table record, in name order.
    pub fn all_tables(&mut self) -> Result<Vec<Arc<TableRecord>>> {
        let (start, end) = self.keys.schemas();
        let mut records = Vec::new();
        self.for_each(&start, &end, |_, key, bytes| {
            records.push(Arc::new(decode_record(&key, &bytes)?));
            Ok(())
        })?;
        Ok(records)
    }

    pub fn put_table(&mut self, record: TableRecord) -> Result<()> {
        let key = self.keys.schema(record.name());
        let bytes =
            bincode::serialize(&record).map_err(|e| Error::corrupted("table record", &key, e))?;
        self.put(key, bytes)?;
        self.txn
            .tables
            .insert(record.name().to_owned(), Some(Arc::new(record)));
        Ok(())
    }

    /// Removes the record only (the caller deals with the table's data).
    pub fn remove_table_record(&mut self, table: &str) -> Result<()> {
        self.delete(self.keys.schema(table))?;
        self.txn.tables.insert(table.to_owned(), None);
        Ok(())
    }

    /// A record for a new table, with a fresh table id.
    pub fn new_table(&mut self, schema: &Schema) -> Result<TableRecord> {
        let key = self.keys.next_table_id();
        let id = match self.get(&key)? {
            Some(bytes) => decode_u64(&key, &bytes)?,
            None => 1,
        };
        let next = id
            .checked_add(1)
            .ok_or_else(|| Error::Backend("table ids exhausted".into()))?;
        self.put(key, next.to_be_bytes().to_vec())?;
        let mut record = TableRecord {
            id,
            schema: Schema {
                column_defs: None,
                indexes: Vec::new(),
                ..schema.clone()
            },
            column_ids: Vec::new(),
            index_ids: Vec::new(),
            next_id: 0,
            created: Utc::now().naive_utc(),
        };
        record.redefine(schema)?;
        Ok(record)
    }
}

fn decode_record(key: &[u8], bytes: &[u8]) -> Result<TableRecord> {
    let record: TableRecord =
        bincode::deserialize(bytes).map_err(|e| Error::corrupted("table record", key, e))?;
    let columns = record.schema.column_defs.as_ref().map_or(0, Vec::len);
    if record.column_ids.len() != columns || record.index_ids.len() != record.schema.indexes.len() {
        return Err(Error::corrupted(
            "table record",
            key,
            "ids do not match the schema's columns and indexes",
        ));
    }
    Ok(record)
}
