//! Free loopback ports for members' client and peer listeners.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// A port free a moment ago on 127.0.0.1, chosen below the kernel's ephemeral range so
/// outgoing connections of the process (a load tool's clients, a test's), whose local ports
/// come from that range, cannot take it before the server binds it. Successive calls walk
/// the range from an offset that depends on the process id, so two processes picking ports
/// at the same time start apart.
pub fn try_free_port() -> std::io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u32>().ok())
        })
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.max(10_512));
    let span = high - low;
    // Offset by process so two load tools (or test binaries) start apart.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low + (start + n.wrapping_mul(37)) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// [`try_free_port`] for tests: panics when no port can be had.
pub fn free_port() -> u16 {
    try_free_port().expect("a free port on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_distinct() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        for p in [a, b] {
            assert!(p >= 10_000, "{p}");
        }
    }
}
