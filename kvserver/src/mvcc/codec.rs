//! Bounds-checked helpers for decoding the lock and write record formats.

use crate::errors::{Error, Result, TxnError};

/// A cursor over a stored record; every read checks the remaining length first, so a truncated
/// or garbage record is an error, never a panic.
pub(super) struct RecordReader<'a> {
    data: &'a [u8],
    record: &'static str,
}

impl<'a> RecordReader<'a> {
    pub(super) fn new(data: &'a [u8], record: &'static str) -> Self {
        RecordReader { data, record }
    }

    pub(super) fn error(&self, what: &str) -> Error {
        TxnError::BadFormat(format!("{} record: {what}", self.record)).into()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() < n {
            return Err(self.error("truncated"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    /// A `u32` length followed by that many bytes.
    pub(super) fn len_prefixed(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.bytes(len)
    }
}

/// Appends a `u32` length and the bytes.
pub(super) fn put_len_prefixed(out: &mut Vec<u8>, data: &[u8]) {
    let len = u32::try_from(data.len()).expect("record fields are bounded by the request size");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
}
