//! Hybrid timestamps from PD's timestamp oracle.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical part in a timestamp's `u64` version.
pub const PHYSICAL_SHIFT_BITS: u32 = 18;

/// A TSO timestamp: wall-clock milliseconds plus a logical counter. Ordered like its
/// [`version`](Timestamp::version), which is what stores compare.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch, as PD's clock saw them.
    pub physical: i64,
    /// Counter within the millisecond, below `2^18`.
    pub logical: i64,
}

impl Timestamp {
    /// The `u64` form sent to stores: `physical << 18 | logical`.
    pub fn version(&self) -> u64 {
        ((self.physical as u64) << PHYSICAL_SHIFT_BITS) | (self.logical as u64)
    }

    /// The inverse of [`version`](Timestamp::version).
    pub fn from_version(version: u64) -> Timestamp {
        Timestamp {
            physical: (version >> PHYSICAL_SHIFT_BITS) as i64,
            logical: (version & ((1 << PHYSICAL_SHIFT_BITS) - 1)) as i64,
        }
    }

    /// Milliseconds from this timestamp's physical time to the local clock (0 if in the future).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        now.saturating_sub(self.physical).max(0) as u64
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}.{})", self.physical, self.logical)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_roundtrip_and_order() {
        let a = Timestamp {
            physical: 1_700_000_000_000,
            logical: 5,
        };
        assert_eq!(Timestamp::from_version(a.version()), a);
        assert_eq!(a.version(), (1_700_000_000_000u64 << 18) | 5);
        let b = Timestamp {
            physical: a.physical,
            logical: 6,
        };
        let c = Timestamp {
            physical: a.physical + 1,
            logical: 0,
        };
        assert!(a < b && b < c);
        assert!(a.version() < b.version() && b.version() < c.version());
    }
}
