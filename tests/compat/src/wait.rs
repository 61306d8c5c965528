//! Polling with a deadline: the only way the harness waits (never a fixed sleep).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::errors::{Error, Result};

/// Pause between two checks of a condition.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Ok(Some(value))`, failing after `timeout` with the reason of
/// the last `Ok(None)`-style miss. `check` reports a miss as `Err(reason)`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(reason) => reason,
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                waited: timeout,
                last,
            });
        }
        tracing::debug!(what, reason = %last, "waiting");
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success_and_times_out_with_the_last_reason() {
        let mut n = 0;
        let v = poll("third time", Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("try {n}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);

        let err = poll::<(), _, _>("never", Duration::from_secs(1), || async {
            Err("still no".to_string())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("never") && err.contains("still no"), "{err}");
    }
}
