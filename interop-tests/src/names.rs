//! Unique names for namespaces, interfaces, sockets and directories.
//!
//! A name is made of the process id, a per-process counter and a few bits of clock noise, so two
//! test binaries running at once (different pids) and two tests in one binary (different
//! counters) never collide, and a leftover from a crashed earlier run with a recycled pid is
//! unlikely to collide either.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `n` written in base 36 (digits and lowercase letters).
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A short token unique to this call: pid, counter and two characters of clock noise, all in
/// base 36 (at most 10 characters in practice: pid ≤ 5, counter ≤ 3, noise 2).
pub fn unique_token() -> String {
    let pid = u64::from(std::process::id());
    let n = u64::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_micros()))
        .unwrap_or(0)
        % (36 * 36);
    format!("{}{}{:0>2}", base36(pid), base36(n), base36(noise))
}

/// An interface name (≤ 15 bytes, the kernel's IFNAMSIZ - 1) that starts with `v` and has
/// a one-letter `side` suffix, e.g. `v1a2b0fka`.
pub fn ifname(side: char) -> String {
    let mut name = format!("v{}{}", unique_token(), side);
    name.truncate(15);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        // The largest pid Linux hands out (2^22) still fits in five characters.
        assert_eq!(base36(4_194_304).len(), 5);
    }

    #[test]
    fn names_are_unique_and_short() {
        let a = ifname('a');
        let b = ifname('a');
        assert_ne!(a, b);
        assert!(a.len() <= 15, "{a}");
    }
}
