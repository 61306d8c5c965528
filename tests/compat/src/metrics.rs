//! What TiKV's Rust client itself counts: its Prometheus counters (default registry) of requests
//! sent to the stores (`tikv_request_total{type}`, one per dispatch, so a retry counts again)
//! and to PD (`pd_request_total{type}`).
//!
//! They show a client *followed* a region error rather than failing or silently succeeding: a
//! single `get` that was dispatched twice met an error on the first try. Counters are
//! process-wide; tests run one cluster at a time, and the counted request types (reads) have no
//! background traffic, so deltas around one call are that call's.

/// A request type label of tikv-client (`src/store/request.rs`): `raw_get`, `kv_get`, ...
pub type RequestType = &'static str;

/// `tikv_request_total{type=kind}`: dispatches of `kind` to the stores so far.
pub fn tikv_requests(kind: RequestType) -> u64 {
    counter("tikv_request_total", kind)
}

/// `pd_request_total{type=kind}`: calls of `kind` (`get_region`, `get_store`, ...) to PD so far.
pub fn pd_requests(kind: RequestType) -> u64 {
    counter("pd_request_total", kind)
}

fn counter(family: &str, kind: &str) -> u64 {
    prometheus::gather()
        .iter()
        .filter(|f| f.get_name() == family)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.get_name() == "type" && l.get_value() == kind)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Counts of one request type before and after a call.
#[derive(Debug, Clone, Copy)]
pub struct Delta {
    kind: RequestType,
    tikv: u64,
    pd_get_region: u64,
}

impl Delta {
    /// Starts counting dispatches of `kind` (and PD region lookups).
    pub fn start(kind: RequestType) -> Delta {
        Delta {
            kind,
            tikv: tikv_requests(kind),
            pd_get_region: pd_requests("get_region") + pd_requests("get_region_by_id"),
        }
    }

    /// Dispatches of the request type since [`Delta::start`].
    pub fn dispatches(&self) -> u64 {
        tikv_requests(self.kind) - self.tikv
    }

    /// PD region lookups (`GetRegion`, `GetRegionByID`) since [`Delta::start`].
    pub fn region_lookups(&self) -> u64 {
        pd_requests("get_region") + pd_requests("get_region_by_id") - self.pd_get_region
    }
}
