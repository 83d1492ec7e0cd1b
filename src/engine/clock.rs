//! The wall clock deadlines are read against.
//!
//! Message deadlines (TTL, `x-expires`, delays, deduplication windows) are
//! wall-clock milliseconds, not a monotonic clock: the store keeps each
//! message's publish time, and a restart must expire what expired while the
//! broker was down.

/// No deadline.
pub(crate) const NEVER: u64 = u64::MAX;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
