//! Exponential backoff with jitter, shared by the transport and the scheduler client.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `max`. Each delay is drawn from `[d/2, d]` so that many
/// connections failing together (a store restarting) do not retry in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            next: base,
        }
    }

    /// The delay to wait now; the following one will be twice as long (capped).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = d / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=d - half)
    }

    /// Starts over from `base` (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(35));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        for (d, cap) in delays.iter().zip([10, 20, 35, 35, 35]) {
            assert!(
                *d >= ms(cap) / 2 && *d <= ms(cap),
                "{d:?} outside [{cap}/2, {cap}] ms"
            );
        }
        b.reset();
        assert!(b.next_delay() <= ms(10));
    }
}
