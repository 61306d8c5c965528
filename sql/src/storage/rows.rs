//! Row encoding and the lazy iterators behind `scan_data` and `scan_indexed_data`.
//!
//! Both iterators read one page (the configured batch size) per KV request, so a query that
//! stops early (LIMIT, EXISTS) reads no more than it needs. They borrow the storage, which
//! guarantees no write can interleave with an open iterator.

use std::collections::HashMap;

use gluesql_core::data::{Key, Value};
use gluesql_core::error::Result as GlueResult;

use super::{Ctx, SqlStorage};
use crate::errors::{Error, Result};

type Row = (Key, Vec<Value>);

pub(super) fn encode_row(key: &[u8], values: &[Value]) -> Result<Vec<u8>> {
    bincode::serialize(values).map_err(|e| Error::corrupted("row", key, e))
}

pub(super) fn decode_row(key: &[u8], bytes: &[u8]) -> Result<Vec<Value>> {
    bincode::deserialize(bytes).map_err(|e| Error::corrupted("row", key, e))
}

/// The row key GlueSQL hands back to `insert_data`/`delete_data` for a scanned row: the row
/// key bytes themselves (`Key::Bytea` encodes to its bytes unchanged).
fn scanned_key(row_key: &[u8]) -> Key {
    Key::Bytea(row_key.to_vec())
}

/// What one page request returned.
struct Page {
    rows: Vec<Row>,
    /// The last KV key read (resume point), `None` when the range is exhausted.
    last: Option<Vec<u8>>,
}

/// Reads the next page of rows within the remaining bounds.
type FetchPage<'a> = Box<dyn FnMut(&mut Ctx<'_>, &Bounds) -> Result<Page> + 'a>;

/// Iterates pages of rows, fetching the next one when the current one runs out.
pub(super) struct Pager<'a> {
    storage: &'a SqlStorage,
    fetch: FetchPage<'a>,
    bounds: Bounds,
    buffered: std::vec::IntoIter<Row>,
    done: bool,
}

/// The part of the range still to read.
pub(super) struct Bounds {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub reverse: bool,
}

impl<'a> Pager<'a> {
    /// Rows of table `table_id` in row-key order.
    pub fn rows(storage: &'a SqlStorage, table_id: u64) -> Pager<'a> {
        let (start, end) = storage.keys.rows(table_id);
        let batch = storage.scan_batch as usize;
        let fetch = move |ctx: &mut Ctx<'_>, b: &Bounds| -> Result<Page> {
            let pairs = ctx.scan_page(&b.start, &b.end, false)?;
            let last = (pairs.len() == batch).then(|| pairs[batch - 1].0.clone());
            let rows = pairs
                .into_iter()
                .map(|(k, v)| {
                    let row_key = ctx.keys().row_key(table_id, &k).ok_or_else(|| {
                        Error::corrupted("row", &k, "scanned outside the table's rows")
                    })?;
                    Ok((scanned_key(row_key), decode_row(&k, &v)?))
                })
                .collect::<Result<_>>()?;
            Ok(Page { rows, last })
        };
        Pager::new(storage, Box::new(fetch), start, end, false)
    }

    /// Rows of table `table_id` whose index entries lie in `[start, end)`, in index order
    /// (descending when `reverse`).
    pub fn index(
        storage: &'a SqlStorage,
        table_id: u64,
        start: Vec<u8>,
        end: Vec<u8>,
        reverse: bool,
    ) -> Pager<'a> {
        let batch = storage.scan_batch as usize;
        let fetch = move |ctx: &mut Ctx<'_>, b: &Bounds| -> Result<Page> {
            let entries = ctx.scan_page(&b.start, &b.end, b.reverse)?;
            let last = (entries.len() == batch).then(|| entries[batch - 1].0.clone());
            let row_keys: Vec<Vec<u8>> = entries
                .iter()
                .map(|(_, row_key)| ctx.keys().row(table_id, row_key))
                .collect();
            let mut found: HashMap<Vec<u8>, Vec<u8>> =
                ctx.batch_get(row_keys.clone())?.into_iter().collect();
            let rows = entries
                .iter()
                .zip(row_keys)
                .map(|((entry, row_key), full_key)| {
                    let bytes = found.remove(&full_key).ok_or_else(|| {
                        Error::corrupted("index entry", entry, "its row does not exist")
                    })?;
                    Ok((scanned_key(row_key), decode_row(&full_key, &bytes)?))
                })
                .collect::<Result<_>>()?;
            Ok(Page { rows, last })
        };
        Pager::new(storage, Box::new(fetch), start, end, reverse)
    }

    fn new(
        storage: &'a SqlStorage,
        fetch: FetchPage<'a>,
        start: Vec<u8>,
        end: Vec<u8>,
        reverse: bool,
    ) -> Pager<'a> {
        Pager {
            storage,
            fetch,
            bounds: Bounds {
                start,
                end,
                reverse,
            },
            buffered: Vec::new().into_iter(),
            done: false,
        }
    }

    fn next_page(&mut self) -> Result<()> {
        let fetch = &mut self.fetch;
        let bounds = &self.bounds;
        let page = self.storage.read(|ctx| fetch(ctx, bounds))?;
        match page.last {
            Some(mut last) if self.bounds.reverse => {
                // Reverse scans read below an exclusive upper bound.
                std::mem::swap(&mut self.bounds.end, &mut last);
            }
            Some(mut last) => {
                last.push(0);
                self.bounds.start = last;
            }
            None => self.done = true,
        }
        self.buffered = page.rows.into_iter();
        Ok(())
    }
}

impl Iterator for Pager<'_> {
    type Item = GlueResult<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.buffered.next() {
                return Some(Ok(row));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.next_page() {
                self.done = true;
                return Some(Err(e.into_glue()));
            }
        }
    }
}
