//! raft-rs logs through `slog`; everything else in the workspace logs through `tracing`. This
//! module bridges the two: [`raft_logger`] builds the `slog::Logger` a group hands to raft-rs, and
//! its drain re-emits every record as a `tracing` event with target `raft` and the fixed fields
//! `region_id` and `peer_id`, plus raft-rs's own key-value pairs in a `kv` field.

use std::fmt::{self, Write as _};

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};
use tracing::Level;

/// The `slog::Logger` for the raft-rs instance of peer `peer_id` of `region_id`.
pub fn raft_logger(region_id: u64, peer_id: u64) -> slog::Logger {
    slog::Logger::root(
        TracingDrain,
        slog::o!("region_id" => region_id, "peer_id" => peer_id),
    )
}

/// An `slog` drain that forwards records to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = match record.level() {
            slog::Level::Critical | slog::Level::Error => Level::ERROR,
            slog::Level::Warning => Level::WARN,
            slog::Level::Info => Level::INFO,
            slog::Level::Debug => Level::DEBUG,
            slog::Level::Trace => Level::TRACE,
        };
        // Formatting the key-value pairs is the expensive part; skip it for filtered-out levels.
        if !level_enabled(level) {
            return Ok(());
        }
        let mut fields = Fields::default();
        // Serializers only fail if they choose to; ours never does.
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let (region_id, peer_id, kv, msg) =
            (fields.region_id, fields.peer_id, fields.rest, record.msg());
        match level {
            Level::ERROR => tracing::error!(target: "raft", region_id, peer_id, kv = %kv, "{msg}"),
            Level::WARN => tracing::warn!(target: "raft", region_id, peer_id, kv = %kv, "{msg}"),
            Level::INFO => tracing::info!(target: "raft", region_id, peer_id, kv = %kv, "{msg}"),
            Level::DEBUG => tracing::debug!(target: "raft", region_id, peer_id, kv = %kv, "{msg}"),
            _ => tracing::trace!(target: "raft", region_id, peer_id, kv = %kv, "{msg}"),
        }
        Ok(())
    }
}

fn level_enabled(level: Level) -> bool {
    match level {
        Level::ERROR => tracing::enabled!(target: "raft", Level::ERROR),
        Level::WARN => tracing::enabled!(target: "raft", Level::WARN),
        Level::INFO => tracing::enabled!(target: "raft", Level::INFO),
        Level::DEBUG => tracing::enabled!(target: "raft", Level::DEBUG),
        _ => tracing::enabled!(target: "raft", Level::TRACE),
    }
}

/// Collects `region_id`/`peer_id` as numbers and every other pair as `key=value` text.
#[derive(Default)]
struct Fields {
    region_id: u64,
    peer_id: u64,
    rest: String,
}

impl Serializer for Fields {
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        match key {
            "region_id" => self.region_id = val,
            "peer_id" => self.peer_id = val,
            _ => return self.emit_arguments(key, &format_args!("{val}")),
        }
        Ok(())
    }

    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(self.rest, "{key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A tracing subscriber that records each event's fields as text.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Visitor<'a>(&'a mut String);

    impl tracing::field::Visit for Visitor<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, "{}={:?};", field.name(), value);
        }
        fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
            let _ = write!(self.0, "{}={};", field.name(), value);
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut s = format!(
                "{}:{};",
                event.metadata().target(),
                event.metadata().level()
            );
            event.record(&mut Visitor(&mut s));
            self.0.lock().unwrap().push(s);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn records_carry_region_and_peer_ids() {
        let capture = Capture::default();
        tracing::subscriber::with_default(capture.clone(), || {
            let logger = raft_logger(7, 3);
            slog::info!(logger, "became leader at term {}", 6; "term" => 6u64, "kind" => "x");
            slog::debug!(logger.new(slog::o!("extra" => "y")), "quiet");
        });
        let events = capture.0.lock().unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].starts_with("raft:INFO;"), "{}", events[0]);
        assert!(events[0].contains("region_id=7;"), "{}", events[0]);
        assert!(events[0].contains("peer_id=3;"), "{}", events[0]);
        assert!(
            events[0].contains("became leader at term 6"),
            "{}",
            events[0]
        );
        assert!(events[0].contains("term=6"), "{}", events[0]);
        assert!(events[1].contains("extra=y"), "{}", events[1]);
    }
}
