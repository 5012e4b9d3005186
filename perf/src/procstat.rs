//! CPU time and memory of a process, read from `/proc` (Linux): the client's own
//! CPU per request (the same user+system figure `getrusage(RUSAGE_SELF)` gives,
//! without unsafe code) and the servers' CPU time and peak RSS during a comparison.

use std::io;
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`. Linux fixes
/// USER_HZ at 100 on every architecture it exports to user space.
const USER_HZ: u64 = 100;

/// User + system CPU time consumed so far by process `pid` (all its threads),
/// or by this process when `pid` is `None`.
pub fn cpu_time(pid: Option<u32>) -> io::Result<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    parse_stat_cpu(&std::fs::read_to_string(path)?)
}

/// Peak resident set size (VmHWM) of `pid` in bytes.
pub fn peak_rss(pid: u32) -> io::Result<u64> {
    parse_status_kb(
        &std::fs::read_to_string(format!("/proc/{pid}/status"))?,
        "VmHWM:",
    )
    .map(|kb| kb * 1024)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Fields 14 and 15 (utime, stime) of a `stat` line. The command name (field 2)
/// may hold spaces and parentheses, so counting starts after its last `)`.
fn parse_stat_cpu(line: &str) -> io::Result<Duration> {
    let rest = &line[line.rfind(')').ok_or_else(|| bad("stat: no ')'"))? + 1..];
    // rest starts at field 3 (state): utime is the 12th field after it.
    let mut it = rest.split_whitespace().skip(11);
    let mut next = || -> io::Result<u64> {
        it.next()
            .ok_or_else(|| bad("stat: too few fields"))?
            .parse::<u64>()
            .map_err(|_| bad("stat: utime/stime not a number"))
    };
    let ticks = next()? + next()?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

fn parse_status_kb(status: &str, key: &str) -> io::Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| bad("status: key missing"))?;
    line[key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("status: value not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_even_with_odd_command_names() {
        let line =
            "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat_cpu(line).unwrap(), Duration::from_millis(3250));
        assert!(parse_stat_cpu("12 (x) S 1 2").is_err());
    }

    #[test]
    fn parses_vmhwm() {
        let status = "Name:\tetcd\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 4 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:").unwrap(), 51200);
        assert!(parse_status_kb(status, "VmSwap:").is_err());
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(peak_rss(pid).unwrap() > 0);
        // Burn a little CPU so the counter moves off zero on any machine.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_time(Some(pid)).is_ok());
        assert!(cpu_time(None).is_ok());
    }
}
