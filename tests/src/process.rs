//! Helpers for tests on real processes (`tests/tests/e2e*.rs`): the server binaries and
//! retrying client calls.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tinykv_playground::Binaries;
use tokio::time::Instant;

/// The server binaries of this build profile, built once per test process (a no-op when up to
/// date) so a test never runs stale ones.
pub fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| Binaries::build_with_cargo(!cfg!(debug_assertions)).expect("build servers"))
}

/// Retries `op` every `retry` until it succeeds, panicking with the last error after
/// `deadline`. For idempotent operations only: a failed attempt may still have been applied.
pub async fn until_ok<T, F, Fut>(what: &str, deadline: Duration, retry: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = client::Result<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < until => {
                tracing::debug!(what, error = %e, "retrying");
                tokio::time::sleep(retry).await;
            }
            Err(e) => panic!("{what}: still failing after {deadline:?}: {e}"),
        }
    }
}
