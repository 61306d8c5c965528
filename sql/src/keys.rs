//! The SQL keyspace: every key the SQL layer writes is built here.
//!
//! ```text
//!  P = 'S' ++ memcomparable(namespace)              one keyspace per namespace (prefix-free)
//!  P 'm' "format"                                   storage format version (u32 BE)
//!  P 'm' "next-table-id"                            table id allocator (u64 BE)
//!  P 's' <table name>                               TableRecord (schema, ids, created)
//!  P 'f' <FUNCTION NAME>                            custom function
//!  P 't' <table id u64 BE> 'r' <row key>            row (bincode Vec<Value>)
//!  P 't' <table id> 'i' <index id u32 BE> memcomparable(<value cmp bytes>) <row key>
//!                                                   index entry, value = row key
//!  P 't' <table id> 'u' <column id u32 BE> <value cmp bytes>
//!                                                   UNIQUE guard, value = row key
//! ```
//!
//! Row keys are GlueSQL's order-preserving `Key::to_cmp_be_bytes()` of the primary key, or
//! `start_ts ++ seq` for tables without one. Index values are wrapped in the memcomparable
//! encoding so that one value's entries are exactly the keys under its prefix (raw cmp bytes of
//! strings are not prefix-free: "ab" would otherwise prefix "abc"). Rows, indexes and guards of
//! a table share the `P 't' <id>` prefix, so dropping a table is one range, and renaming one
//! rewrites a single key.

use client::codec::encode_bytes;

/// Key builder for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: Vec<u8>,
}

const FORMAT: &[u8] = b"mformat";
const NEXT_TABLE_ID: &[u8] = b"mnext-table-id";
const SCHEMA: u8 = b's';
const FUNCTION: u8 = b'f';
const TABLE: u8 = b't';
const ROW: u8 = b'r';
const INDEX: u8 = b'i';
const UNIQUE: u8 = b'u';

impl KeySpace {
    /// The keyspace of `namespace` (any string; distinct namespaces never share keys).
    pub fn new(namespace: &str) -> KeySpace {
        let mut prefix = vec![b'S'];
        prefix.extend(encode_bytes(namespace.as_bytes()));
        KeySpace { prefix }
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let len = self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut key = Vec::with_capacity(len);
        key.extend_from_slice(&self.prefix);
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    /// Every key of the namespace.
    pub fn all(&self) -> (Vec<u8>, Vec<u8>) {
        (self.prefix.clone(), prefix_end(&self.prefix))
    }

    /// The storage format version record.
    pub fn format_version(&self) -> Vec<u8> {
        self.key(&[FORMAT])
    }

    /// The table id allocator.
    pub fn next_table_id(&self) -> Vec<u8> {
        self.key(&[NEXT_TABLE_ID])
    }

    /// The record of `table`.
    pub fn schema(&self, table: &str) -> Vec<u8> {
        self.key(&[&[SCHEMA], table.as_bytes()])
    }

    /// All schema keys, in table-name order.
    pub fn schemas(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(&[&[SCHEMA]]);
        let end = prefix_end(&start);
        (start, end)
    }

    /// A custom function, by upper-cased name.
    pub fn function(&self, upper_name: &str) -> Vec<u8> {
        self.key(&[&[FUNCTION], upper_name.as_bytes()])
    }

    /// Every custom function.
    pub fn functions(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(&[&[FUNCTION]]);
        let end = prefix_end(&start);
        (start, end)
    }

    /// Every key of table `id`: rows, index entries and guards.
    pub fn table(&self, id: u64) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(&[&[TABLE], &id.to_be_bytes()]);
        let end = prefix_end(&start);
        (start, end)
    }

    fn rows_prefix(&self, table: u64) -> Vec<u8> {
        self.key(&[&[TABLE], &table.to_be_bytes(), &[ROW]])
    }

    /// A row of `table`.
    pub fn row(&self, table: u64, row_key: &[u8]) -> Vec<u8> {
        self.key(&[&[TABLE], &table.to_be_bytes(), &[ROW], row_key])
    }

    /// Every row of `table`, in row-key order.
    pub fn rows(&self, table: u64) -> (Vec<u8>, Vec<u8>) {
        let start = self.rows_prefix(table);
        let end = prefix_end(&start);
        (start, end)
    }

    /// The row key inside a row's full key, or `None` if `key` is not a row of `table`.
    pub fn row_key<'k>(&self, table: u64, key: &'k [u8]) -> Option<&'k [u8]> {
        key.strip_prefix(self.rows_prefix(table).as_slice())
    }

    fn index_prefix(&self, table: u64, index: u32) -> Vec<u8> {
        self.key(&[
            &[TABLE],
            &table.to_be_bytes(),
            &[INDEX],
            &index.to_be_bytes(),
        ])
    }

    /// Every entry of one index.
    pub fn index(&self, table: u64, index: u32) -> (Vec<u8>, Vec<u8>) {
        let start = self.index_prefix(table, index);
        let end = prefix_end(&start);
        (start, end)
    }

    /// The prefix shared by the entries of one index value (`value` = cmp bytes).
    pub fn index_value(&self, table: u64, index: u32, value: &[u8]) -> Vec<u8> {
        let mut key = self.index_prefix(table, index);
        key.extend(encode_bytes(value));
        key
    }

    /// The entry of the row `row_key` under `value` (cmp bytes) in an index.
    pub fn index_entry(&self, table: u64, index: u32, value: &[u8], row_key: &[u8]) -> Vec<u8> {
        let mut key = self.index_value(table, index, value);
        key.extend_from_slice(row_key);
        key
    }

    /// The guard of `value` (cmp bytes) in a UNIQUE column.
    pub fn unique(&self, table: u64, column: u32, value: &[u8]) -> Vec<u8> {
        self.key(&[
            &[TABLE],
            &table.to_be_bytes(),
            &[UNIQUE],
            &column.to_be_bytes(),
            value,
        ])
    }

    /// Every guard of one UNIQUE column.
    pub fn uniques(&self, table: u64, column: u32) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(&[
            &[TABLE],
            &table.to_be_bytes(),
            &[UNIQUE],
            &column.to_be_bytes(),
        ]);
        let end = prefix_end(&start);
        (start, end)
    }
}

/// The smallest key greater than every key starting with `prefix`.
///
/// Panics on an empty or all-0xFF prefix: every prefix built here starts with `'S'`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    panic!("prefix \"{}\" has no upper bound", prefix.escape_ascii());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_never_share_keys() {
        let a = KeySpace::new("a");
        let ab = KeySpace::new("a/b");
        let (a_start, a_end) = a.all();
        let (ab_start, _) = ab.all();
        assert!(
            !(a_start <= ab_start && ab_start < a_end),
            "one namespace inside another"
        );
        assert!(a.schema("t") >= a_start && a.schema("t") < a_end);
    }

    #[test]
    fn index_values_are_prefix_free_and_ordered() {
        let ks = KeySpace::new("n");
        let ab = ks.index_entry(1, 2, b"\0ab", b"row1");
        let abc = ks.index_entry(1, 2, b"\0abc", b"row0");
        let ab_prefix = ks.index_value(1, 2, b"\0ab");
        assert!(ab.starts_with(&ab_prefix));
        assert!(
            !abc.starts_with(&ab_prefix),
            "a longer value is not under the shorter one"
        );
        assert!(ab < abc, "value order wins over row keys");
        let (start, end) = ks.index(1, 2);
        assert!(start <= ab && abc < end);
    }

    #[test]
    fn rows_and_prefix_end() {
        let ks = KeySpace::new("n");
        let row = ks.row(7, b"pk");
        assert_eq!(ks.row_key(7, &row), Some(&b"pk"[..]));
        assert_eq!(ks.row_key(8, &row), None);
        let (start, end) = ks.rows(7);
        assert!(start <= row && row < end);
        let (t_start, t_end) = ks.table(7);
        assert!(t_start <= start && end <= t_end);
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    }
}
