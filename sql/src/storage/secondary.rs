//! Secondary indexes: `Index` (ordered scans through an index) and `IndexMut` (create/drop).
//!
//! An index on expression `e` holds one entry per row, `P 't' <table> 'i' <index>
//! memcomparable(cmp_bytes(e(row))) <row key>`, so entries sort by the expression's value, then
//! by row key, and one value's entries are exactly the keys under its prefix. GlueSQL's planner
//! (with our `plan_index` step) turns `WHERE e <op> v` and `ORDER BY e` into
//! `scan_indexed_data`; NULL's cmp bytes sort after every value, as in GlueSQL's own indexes.

use gluesql_core::ast::{IndexOperator, OrderByExpr};
use gluesql_core::chrono::Utc;
use gluesql_core::data::{SchemaIndex, SchemaIndexOrd, Value};
use gluesql_core::error::Result;
use gluesql_core::plan::plan_scalar_expr;
use gluesql_core::store::{Index, IndexError, IndexMut, RowIter};

use super::rows::{decode_row, Pager};
use super::sync::index_value;
use super::{SqlStorage, TableRecord};
use crate::errors::Error;
use crate::keys::prefix_end;

impl Index for SqlStorage {
    fn scan_indexed_data<'a>(
        &'a self,
        table_name: &str,
        index_name: &str,
        asc: Option<bool>,
        cmp_value: Option<(&IndexOperator, Value)>,
    ) -> Result<RowIter<'a>> {
        let (table_id, start, end) = self.read(|ctx| {
            let table = ctx.existing_table(table_name)?;
            let index = table
                .index_id(index_name)
                .ok_or_else(|| Error::IndexNotFound {
                    table: table_name.to_owned(),
                    index: index_name.to_owned(),
                })?;
            let (first, last) = ctx.keys().index(table.id, index);
            let (start, end) = match cmp_value {
                None => (first, last),
                Some((op, value)) => {
                    let at = ctx
                        .keys()
                        .index_value(table.id, index, &value.to_cmp_be_bytes()?);
                    match op {
                        IndexOperator::Eq => {
                            let after = prefix_end(&at);
                            (at, after)
                        }
                        IndexOperator::Gt => (prefix_end(&at), last),
                        IndexOperator::GtEq => (at, last),
                        IndexOperator::Lt => (first, at),
                        IndexOperator::LtEq => (first, prefix_end(&at)),
                    }
                }
            };
            Ok((table.id, start, end))
        })?;
        let reverse = asc == Some(false);
        Ok(Box::new(Pager::index(self, table_id, start, end, reverse)))
    }
}

impl IndexMut for SqlStorage {
    /// Adds the index to the schema and writes an entry for every existing row.
    fn create_index(
        &mut self,
        table_name: &str,
        index_name: &str,
        column: &OrderByExpr,
    ) -> Result<()> {
        Ok(self.write(|ctx| {
            let Some(table) = ctx.table(table_name)? else {
                return Err(IndexError::TableNotFound(table_name.to_owned()).into());
            };
            if table.index_id(index_name).is_some() {
                return Err(IndexError::IndexNameAlreadyExists(index_name.to_owned()).into());
            }
            let mut record = TableRecord::clone(&table);
            let index_id = record.allocate_id()?;
            record.schema.indexes.push(SchemaIndex {
                name: index_name.to_owned(),
                expr: column.expr.clone(),
                // Entries are ordered by value and can be read in either direction.
                order: SchemaIndexOrd::Both,
                created: Utc::now().naive_utc(),
            });
            record.index_ids.push(index_id);

            let expr = plan_scalar_expr(column.expr.clone());
            let columns = record.column_names();
            let (start, end) = ctx.keys().rows(record.id);
            let table_id = record.id;
            ctx.for_each(&start, &end, |ctx, key, bytes| {
                let row = decode_row(&key, &bytes)?;
                let row_key = ctx
                    .keys()
                    .row_key(table_id, &key)
                    .ok_or_else(|| {
                        Error::corrupted("row", &key, "scanned outside the table's rows")
                    })?
                    .to_vec();
                let value = index_value(&expr, &columns, &row)?;
                let entry = ctx.keys().index_entry(table_id, index_id, &value, &row_key);
                ctx.put(entry, row_key)
            })?;
            ctx.put_table(record)
        })?)
    }

    /// Removes the index from the schema and deletes its entries.
    fn drop_index(&mut self, table_name: &str, index_name: &str) -> Result<()> {
        Ok(self.write(|ctx| {
            let Some(table) = ctx.table(table_name)? else {
                return Err(IndexError::TableNotFound(table_name.to_owned()).into());
            };
            let Some(position) = table
                .schema
                .indexes
                .iter()
                .position(|i| i.name == index_name)
            else {
                return Err(IndexError::IndexNameDoesNotExist(index_name.to_owned()).into());
            };
            let mut record = TableRecord::clone(&table);
            record.schema.indexes.remove(position);
            let index_id = record.index_ids.remove(position);
            let (start, end) = ctx.keys().index(record.id, index_id);
            ctx.delete_range(&start, &end)?;
            ctx.put_table(record)
        })?)
    }
}
