//! Argument checks shared by the raw handlers. Every check runs before anything is read or
//! written, so a rejected request has no effect.

use crate::config::Limits;
use crate::errors::{Error, Result};
use crate::storage::Modify;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// A key a request reads or writes: non-empty and at most `max_key_size` bytes.
pub(super) fn key(limits: &Limits, key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(invalid("key must not be empty"));
    }
    bound(limits, key)
}

/// A range bound: may be empty (meaning unbounded), but no longer than a key may be.
pub(super) fn bound(limits: &Limits, key: &[u8]) -> Result<()> {
    if key.len() > limits.max_key_size {
        return Err(invalid(format!(
            "key is {} bytes, larger than the limit of {} bytes",
            key.len(),
            limits.max_key_size
        )));
    }
    Ok(())
}

/// Raw TTL is not supported: keys never expire, so a request asking for expiry is refused rather
/// than silently storing a key that would outlive what the client expects.
pub(super) fn no_ttl(ttl: u64) -> Result<()> {
    if ttl != 0 {
        return Err(invalid(format!(
            "raw TTL is not supported (got ttl = {ttl}); send ttl = 0"
        )));
    }
    Ok(())
}

/// The whole batch must fit in one Raft entry, so it can be applied atomically.
pub(super) fn write_size(limits: &Limits, batch: &[Modify]) -> Result<()> {
    let size: usize = batch.iter().map(Modify::size).sum();
    if size > limits.raft_entry_max_size {
        return Err(invalid(format!(
            "write is {size} bytes, larger than the raft entry limit of {} bytes",
            limits.raft_entry_max_size
        )));
    }
    Ok(())
}

/// A scan's `limit` (or a batch scan's `each_limit`), as a count of entries.
pub(super) fn scan_limit(limits: &Limits, limit: u32) -> Result<usize> {
    if limit == 0 {
        return Err(invalid("scan limit must be positive"));
    }
    if limit > limits.max_scan_limit {
        return Err(invalid(format!(
            "scan limit {limit} is larger than the maximum of {}",
            limits.max_scan_limit
        )));
    }
    Ok(limit as usize)
}

/// The half-open key range `[lower, upper)` a scan covers; an empty `upper` means +infinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScanRange {
    pub lower: Vec<u8>,
    pub upper: Vec<u8>,
}

impl ScanRange {
    /// Interprets a request's `(start_key, end_key)` the way TiKV does. Forward: `start_key` is
    /// the inclusive lower bound and `end_key` the exclusive upper bound (empty = +infinity).
    /// Reverse: `start_key` is the exclusive upper bound (empty = +infinity) and `end_key` the
    /// inclusive lower bound. Inverted bounds are an error; equal bounds are an empty range.
    pub fn from_request(
        limits: &Limits,
        start_key: Vec<u8>,
        end_key: Vec<u8>,
        reverse: bool,
    ) -> Result<ScanRange> {
        bound(limits, &start_key)?;
        bound(limits, &end_key)?;
        let (lower, upper) = if reverse {
            (end_key, start_key)
        } else {
            (start_key, end_key)
        };
        if !upper.is_empty() && lower > upper {
            return Err(invalid(if reverse {
                "reverse scan: end_key (the lower bound) must not be greater than start_key"
            } else {
                "start_key must not be greater than end_key"
            }));
        }
        Ok(ScanRange { lower, upper })
    }

    /// Whether the range certainly holds no key.
    pub fn is_empty(&self) -> bool {
        !self.upper.is_empty() && self.lower >= self.upper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_key_size: 4,
            raft_entry_max_size: 32,
            max_scan_limit: 10,
            latch_slots: 4,
            ..Limits::default()
        }
    }

    #[test]
    fn keys_and_bounds() {
        let l = limits();
        assert!(key(&l, b"").is_err());
        assert!(key(&l, b"abcd").is_ok());
        assert!(key(&l, b"abcde").is_err());
        assert!(bound(&l, b"").is_ok());
        assert!(bound(&l, b"abcde").is_err());
    }

    #[test]
    fn ttl_and_scan_limit() {
        let l = limits();
        assert!(no_ttl(0).is_ok());
        assert!(no_ttl(1).is_err());
        assert!(scan_limit(&l, 0).is_err());
        assert_eq!(scan_limit(&l, 10).unwrap(), 10);
        assert!(scan_limit(&l, 11).is_err());
    }

    #[test]
    fn write_size_counts_the_whole_batch() {
        let l = limits();
        let put = |k: &[u8], v: &[u8]| Modify::Put {
            cf: "default",
            key: k.to_vec(),
            value: v.to_vec(),
        };
        assert!(write_size(&l, &[put(b"a", &[0; 10])]).is_ok());
        assert!(write_size(&l, &[put(b"a", &[0; 10]), put(b"b", &[0; 10])]).is_err());
        assert!(write_size(&l, &[]).is_ok());
    }

    #[test]
    fn scan_ranges_follow_tikv() {
        let l = limits();
        let r = |s: &[u8], e: &[u8], rev| ScanRange::from_request(&l, s.to_vec(), e.to_vec(), rev);
        let fwd = r(b"a", b"c", false).unwrap();
        assert_eq!(
            (fwd.lower.as_slice(), fwd.upper.as_slice()),
            (&b"a"[..], &b"c"[..])
        );
        let rev = r(b"c", b"a", true).unwrap();
        assert_eq!(
            (rev.lower.as_slice(), rev.upper.as_slice()),
            (&b"a"[..], &b"c"[..])
        );
        // Empty upper bound is +infinity in both directions.
        assert!(!r(b"z", b"", false).unwrap().is_empty());
        assert!(!r(b"", b"z", true).unwrap().is_empty());
        // Inverted bounds are refused; equal bounds are merely empty.
        assert!(r(b"c", b"a", false).is_err());
        assert!(r(b"a", b"c", true).is_err());
        assert!(r(b"b", b"b", false).unwrap().is_empty());
        assert!(r(b"abcde", b"", false).is_err());
    }
}
