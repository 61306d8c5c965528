//! Row writes and everything that must change with them, in one place: index entries, UNIQUE
//! guards and foreign-key parent locks.
//!
//! Snapshot isolation alone lets two transactions insert the same UNIQUE value (each checks by
//! reading, neither sees the other) or insert a child whose parent another transaction deletes.
//! Turning these into write-write conflicts closes both:
//!
//! - a UNIQUE value owns the guard key `u/<table>/<column>/<value>` (value: the row key), so two
//!   transactions claiming one value write the same key and the second commit fails;
//! - a child row with a new foreign-key value *locks* the parent's row key, so it conflicts
//!   with a concurrent delete (or update) of that parent.
//!
//! A batch is applied in two phases, releases first: a statement that swaps two rows' unique
//! values (or re-inserts a deleted one) must not trip over its own old guards.

use gluesql_core::data::{Key, Value};
use gluesql_core::executor::{evaluate_stateless, RowContext};
use gluesql_core::plan::{plan_scalar_expr, ExprPlan};

use super::catalog::UniqueColumn;
use super::rows::encode_row;
use super::{Ctx, TableRecord};
use crate::errors::{Error, Result};

/// One row's change: insert (`old` none), update, or delete (`new` none).
pub(super) struct RowChange {
    pub row_key: Vec<u8>,
    pub old: Option<Vec<Value>>,
    pub new: Option<Vec<Value>>,
}

/// The index values and unique values of one row version.
#[derive(Default)]
struct Derived {
    /// Per index: the value's cmp bytes.
    indexes: Vec<Vec<u8>>,
    /// Per unique column: the value's cmp bytes, `None` for NULL (NULLs never collide).
    uniques: Vec<Option<Vec<u8>>>,
}

/// The table's indexes, planned once per batch.
struct Planned<'t> {
    columns: Vec<String>,
    indexes: Vec<(u32, ExprPlan)>,
    uniques: Vec<UniqueColumn>,
    table: &'t TableRecord,
}

impl<'t> Planned<'t> {
    fn new(table: &'t TableRecord) -> Planned<'t> {
        Planned {
            columns: table.column_names(),
            indexes: table
                .index_ids
                .iter()
                .zip(&table.schema.indexes)
                .map(|(id, index)| (*id, plan_scalar_expr(index.expr.clone())))
                .collect(),
            uniques: table.unique_columns(),
            table,
        }
    }

    fn derive(&self, row: Option<&[Value]>) -> Result<Option<Derived>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let indexes = self
            .indexes
            .iter()
            .map(|(_, expr)| index_value(expr, &self.columns, row))
            .collect::<Result<_>>()?;
        let uniques = self
            .uniques
            .iter()
            .map(|u| match row.get(u.position) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Ok(Some(v.to_cmp_be_bytes()?)),
            })
            .collect::<Result<_>>()?;
        Ok(Some(Derived { indexes, uniques }))
    }
}

/// The cmp bytes of `expr` evaluated on `row`: what an index orders by.
pub(super) fn index_value(expr: &ExprPlan, columns: &[String], row: &[Value]) -> Result<Vec<u8>> {
    let context = RowContext::RefVecData {
        columns,
        values: row,
    };
    let value: Value = evaluate_stateless(Some(context), expr)?.try_into()?;
    Ok(value.to_cmp_be_bytes()?)
}

/// Writes `changes` to `table` with their index entries, guards and parent locks.
pub(super) fn apply(ctx: &mut Ctx<'_>, table: &TableRecord, changes: Vec<RowChange>) -> Result<()> {
    let planned = Planned::new(table);
    let mut derived = Vec::with_capacity(changes.len());
    for change in &changes {
        derived.push((
            planned.derive(change.old.as_deref())?,
            planned.derive(change.new.as_deref())?,
        ));
    }
    let id = table.id;

    // Phase 1: release what the old versions held.
    for (change, (old, new)) in changes.iter().zip(&derived) {
        let Some(old) = old else { continue };
        for (i, (index_id, _)) in planned.indexes.iter().enumerate() {
            if new.as_ref().map(|n| &n.indexes[i]) != Some(&old.indexes[i]) {
                let entry = ctx
                    .keys()
                    .index_entry(id, *index_id, &old.indexes[i], &change.row_key);
                ctx.delete(entry)?;
            }
        }
        for (i, unique) in planned.uniques.iter().enumerate() {
            let Some(value) = &old.uniques[i] else {
                continue;
            };
            if new.as_ref().and_then(|n| n.uniques[i].as_ref()) == Some(value) {
                continue;
            }
            let guard = ctx.keys().unique(id, unique.id, value);
            // Only release a guard this row owns.
            if ctx.get(&guard)?.as_deref() == Some(change.row_key.as_slice()) {
                ctx.delete(guard)?;
            }
        }
    }

    // Phase 2: write the rows and claim what the new versions need.
    for (change, (old, new)) in changes.iter().zip(&derived) {
        let row_key = ctx.keys().row(id, &change.row_key);
        let Some(new_row) = &change.new else {
            ctx.delete(row_key)?;
            continue;
        };
        let new = new.as_ref().expect("derived from the new row");
        let bytes = encode_row(&row_key, new_row)?;
        ctx.put(row_key, bytes)?;
        for (i, (index_id, _)) in planned.indexes.iter().enumerate() {
            if old.as_ref().map(|o| &o.indexes[i]) != Some(&new.indexes[i]) {
                let entry = ctx
                    .keys()
                    .index_entry(id, *index_id, &new.indexes[i], &change.row_key);
                ctx.put(entry, change.row_key.clone())?;
            }
        }
        for (i, unique) in planned.uniques.iter().enumerate() {
            let Some(value) = &new.uniques[i] else {
                continue;
            };
            if old.as_ref().and_then(|o| o.uniques[i].as_ref()) == Some(value) {
                continue;
            }
            let guard = ctx.keys().unique(id, unique.id, value);
            match ctx.get(&guard)? {
                Some(owner) if owner != change.row_key => {
                    return Err(Error::DuplicateUnique {
                        table: planned.table.name().to_owned(),
                        column: unique.name.clone(),
                        value: format!("{:?}", new_row[unique.position]),
                    });
                }
                Some(_) => {}
                None => ctx.put(guard, change.row_key.clone())?,
            }
        }
        lock_parents(ctx, &planned, change.old.as_deref(), new_row)?;
    }
    Ok(())
}

/// Locks the parent row of every foreign-key value the row starts to reference.
fn lock_parents(
    ctx: &mut Ctx<'_>,
    planned: &Planned<'_>,
    old: Option<&[Value]>,
    new: &[Value],
) -> Result<()> {
    let mut locks = Vec::new();
    for fk in &planned.table.schema.foreign_keys {
        let Some(position) = planned
            .columns
            .iter()
            .position(|c| *c == fk.referencing_column_name)
        else {
            continue;
        };
        let Some(value) = new.get(position) else {
            continue;
        };
        if matches!(value, Value::Null) || old.and_then(|o| o.get(position)) == Some(value) {
            continue;
        }
        let Some(parent) = ctx.table(&fk.referenced_table_name)? else {
            continue;
        };
        // Foreign keys reference primary keys: the parent's row key is the value's key bytes.
        let parent_key = Key::try_from(value)?.to_cmp_be_bytes()?;
        locks.push(ctx.keys().row(parent.id, &parent_key));
    }
    ctx.lock(locks)
}
