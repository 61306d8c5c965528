//! `ALTER TABLE`. Rows are positional and keyed by table id, guards and indexes by column and
//! index ids, so renames rewrite only the table record; adding or dropping a column rewrites
//! every row in the statement's transaction (see docs/SQL.md for the size this implies).

use gluesql_core::ast::{ColumnDef, ColumnUniqueOption, Expr, Function};
use gluesql_core::data::Value;
use gluesql_core::error::Result;
use gluesql_core::executor::{evaluate_stateless, AlterError};
use gluesql_core::plan::plan_scalar_expr;
use gluesql_core::store::{AlterTable, AlterTableError};

use super::rows::{decode_row, encode_row};
use super::{Ctx, SqlStorage, TableRecord};
use crate::errors::{Error, Result as SqlResult};

impl SqlStorage {
    /// The table's record for an ALTER, or GlueSQL's `TableNotFound`.
    fn altered(ctx: &mut Ctx<'_>, table_name: &str) -> SqlResult<TableRecord> {
        match ctx.table(table_name)? {
            Some(t) => Ok(TableRecord::clone(&t)),
            None => Err(AlterTableError::TableNotFound(table_name.to_owned()).into()),
        }
    }

    fn columns_of(record: &mut TableRecord) -> SqlResult<&mut Vec<ColumnDef>> {
        let name = record.name().to_owned();
        record
            .schema
            .column_defs
            .as_mut()
            .ok_or_else(|| AlterTableError::SchemalessTableFound(name).into())
    }
}

impl AlterTable for SqlStorage {
    fn rename_schema(&mut self, table_name: &str, new_table_name: &str) -> Result<()> {
        Ok(self.write(|ctx| {
            let mut record = Self::altered(ctx, table_name)?;
            if table_name == new_table_name {
                return Ok(());
            }
            if ctx.table(new_table_name)?.is_some() {
                return Err(AlterError::TableAlreadyExists(new_table_name.to_owned()).into());
            }
            ctx.remove_table_record(table_name)?;
            new_table_name.clone_into(&mut record.schema.table_name);
            ctx.put_table(record)
        })?)
    }

    fn rename_column(&mut self, table_name: &str, old: &str, new: &str) -> Result<()> {
        Ok(self.write(|ctx| {
            let mut record = Self::altered(ctx, table_name)?;
            let columns = Self::columns_of(&mut record)?;
            if columns.iter().any(|c| c.name == new) {
                return Err(AlterTableError::AlreadyExistingColumn(new.to_owned()).into());
            }
            let column = columns
                .iter_mut()
                .find(|c| c.name == old)
                .ok_or(AlterTableError::RenamingColumnNotFound)?;
            new.clone_into(&mut column.name);
            // Index expressions name their columns: keep them pointing at the same one.
            for index in &mut record.schema.indexes {
                rename_identifier(&mut index.expr, old, new);
            }
            ctx.put_table(record)
        })?)
    }

    fn add_column(&mut self, table_name: &str, column_def: &ColumnDef) -> Result<()> {
        Ok(self.write(|ctx| {
            let mut record = Self::altered(ctx, table_name)?;
            let default = match (&column_def.default, column_def.nullable) {
                (Some(default), _) => {
                    let default = plan_scalar_expr(default.clone());
                    evaluate_stateless(None, &default)?.try_into()?
                }
                (None, true) => Value::Null,
                (None, false) => {
                    return Err(AlterTableError::DefaultValueRequired(column_def.clone()).into());
                }
            };
            let columns = Self::columns_of(&mut record)?;
            if columns.iter().any(|c| c.name == column_def.name) {
                return Err(AlterTableError::AlreadyExistingColumn(column_def.name.clone()).into());
            }
            columns.push(column_def.clone());
            let column_id = record.allocate_id()?;
            record.column_ids.push(column_id);

            let unique = matches!(
                column_def.unique,
                Some(ColumnUniqueOption { is_primary: false })
            ) && default != Value::Null;
            let guard_value = if unique {
                Some(default.to_cmp_be_bytes()?)
            } else {
                None
            };
            let table_id = record.id;
            let (start, end) = ctx.keys().rows(table_id);
            let mut claimed = false;
            ctx.for_each(&start, &end, |ctx, key, bytes| {
                let mut row = decode_row(&key, &bytes)?;
                row.push(default.clone());
                let encoded = encode_row(&key, &row)?;
                ctx.put(key.clone(), encoded)?;
                if let Some(value) = &guard_value {
                    // Every existing row gets the default: unique only for a single row.
                    if claimed {
                        return Err(Error::DuplicateUnique {
                            table: table_name.to_owned(),
                            column: column_def.name.clone(),
                            value: format!("{default:?}"),
                        });
                    }
                    claimed = true;
                    let row_key = ctx
                        .keys()
                        .row_key(table_id, &key)
                        .ok_or_else(|| {
                            Error::corrupted("row", &key, "scanned outside the table's rows")
                        })?
                        .to_vec();
                    let guard = ctx.keys().unique(table_id, column_id, value);
                    ctx.put(guard, row_key)?;
                }
                Ok(())
            })?;
            ctx.put_table(record)
        })?)
    }

    fn drop_column(&mut self, table_name: &str, column_name: &str, if_exists: bool) -> Result<()> {
        Ok(self.write(|ctx| {
            let mut record = Self::altered(ctx, table_name)?;
            let columns = Self::columns_of(&mut record)?;
            let Some(position) = columns.iter().position(|c| c.name == column_name) else {
                if if_exists {
                    return Ok(());
                }
                return Err(AlterTableError::DroppingColumnNotFound(column_name.to_owned()).into());
            };
            let dropped = columns.remove(position);
            let column_id = record.column_ids.remove(position);
            let table_id = record.id;
            if matches!(
                dropped.unique,
                Some(ColumnUniqueOption { is_primary: false })
            ) {
                let (start, end) = ctx.keys().uniques(table_id, column_id);
                ctx.delete_range(&start, &end)?;
            }
            let (start, end) = ctx.keys().rows(table_id);
            ctx.for_each(&start, &end, |ctx, key, bytes| {
                let mut row = decode_row(&key, &bytes)?;
                if position < row.len() {
                    row.remove(position);
                }
                let encoded = encode_row(&key, &row)?;
                ctx.put(key, encoded)
            })?;
            ctx.put_table(record)
        })?)
    }
}

/// Renames column `old` to `new` in an index expression (identifiers, nesting, unary and
/// binary operators and CAST: all an index expression may contain).
fn rename_identifier(expr: &mut Expr, old: &str, new: &str) {
    match expr {
        Expr::Identifier(ident) if ident == old => new.clone_into(ident),
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => {
            rename_identifier(inner, old, new);
        }
        Expr::BinaryOp { left, right, .. } => {
            rename_identifier(left, old, new);
            rename_identifier(right, old, new);
        }
        Expr::Function(f) => {
            if let Function::Cast { expr, .. } = f.as_mut() {
                rename_identifier(expr, old, new);
            }
        }
        _ => {}
    }
}
