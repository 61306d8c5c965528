//! Raw API handlers: plain key-value reads and writes on one column family, no MVCC.
//!
//! Every handler follows the same path: check the arguments ([`validate`]) before touching
//! storage, take a snapshot or build one atomic batch of [`Modify`](crate::storage::Modify)s, and
//! hand the request's `context` to the storage (over Raft it routes the request to its region).
//! Results are bound into the response by [`crate::errors::raw_response`], the single wire
//! mapping: region errors in `region_error`, other errors in the `error` string, or a gRPC status
//! for the three responses without an `error` field.
//!
//! Ordinary puts and deletes do not take latches (last writer wins, as in TiKV). Compare-and-swap
//! holds the key's latch across read-compare-write, and puts/deletes flagged `for_cas` take the
//! same latch so they cannot slip between a CAS's read and its write.

mod cas;
mod read;
mod scan;
mod validate;
mod write;

pub(super) use cas::compare_and_swap;
pub(super) use read::{batch_get, get};
pub(super) use scan::{batch_scan, scan};
pub(super) use write::{batch_delete, batch_put, delete, delete_range, put};

use proto::kvrpcpb::{ApiVersion, Context};
use tonic::Status;

use crate::errors::{raw_response, Error, RawErrorResponse, Result};
use crate::storage::RegionSnapshot;
use crate::work::Work;

/// What a raw RPC handler returns to the router.
type RpcResult<T> = std::result::Result<T, Status>;

/// The routing context of a request; a request without one addresses the whole key space (what a
/// standalone server serves). Only API v1 is spoken: v1ttl would promise expiring keys, and v2
/// keys carry a keyspace prefix this server would otherwise store as part of the key.
fn context(ctx: Option<Context>) -> Result<Context> {
    let ctx = ctx.unwrap_or_default();
    if ctx.api_version != ApiVersion::V1 as i32 {
        let name = ApiVersion::try_from(ctx.api_version)
            .map(|v| v.as_str_name().to_string())
            .unwrap_or_else(|_| ctx.api_version.to_string());
        return Err(Error::InvalidArgument(format!(
            "API version {name} is not supported; this server speaks API V1"
        )));
    }
    Ok(ctx)
}

/// Runs a read of `snap` doing `work`: inline for a few point reads, else on a blocking thread
/// (scans can walk up to `max_scan_limit` entries, which must not stall the async executor; see
/// [`crate::work`]).
async fn read_snapshot<T, F>(snap: RegionSnapshot, work: Work, f: F) -> Result<T>
where
    F: FnOnce(&RegionSnapshot) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    crate::work::run(work, move || f(&snap)).await
}

/// The region a request was routed to (0 when it carries no context), for logs.
fn region_id(ctx: &Option<Context>) -> u64 {
    ctx.as_ref().map_or(0, |c| c.region_id)
}

/// Logs a failed request and binds the result into the RPC's answer.
fn finish<R: RawErrorResponse>(op: &'static str, region_id: u64, res: Result<R>) -> RpcResult<R> {
    if let Err(e) = &res {
        match e {
            Error::InvalidArgument(_) => {
                tracing::debug!(op, region_id, error = %e, "raw request rejected")
            }
            Error::Region(_) => {
                tracing::debug!(op, region_id, error = %e, "raw request hit a region error")
            }
            _ => tracing::warn!(op, region_id, error = %e, "raw request failed"),
        }
    }
    raw_response(res)
}

#[cfg(test)]
mod tests;
