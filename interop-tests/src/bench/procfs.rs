//! Cheap readings from `/proc`: a process's CPU time and memory, the size of the kernel FIB of
//! the process's network namespace, and running code inside a named network namespace.

use std::fs::File;
use std::os::fd::AsRawFd;

use super::BenchError;

/// utime + stime of process `pid` (all threads), in seconds (proc(5), fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)?;
    // The command name may hold spaces or parentheses: count fields after the last ')'.
    let rest = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .ok_or_else(|| BenchError::Protocol(format!("malformed {path}")))?;
    let mut f = rest.split_whitespace().skip(11);
    let mut tick = || -> u64 { f.next().and_then(|v| v.parse().ok()).unwrap_or(0) };
    let ticks = tick() + tick();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ticks as f64 / hz)
}

/// Resident memory of a process in KiB: (VmRSS, VmHWM) from `/proc/PID/status`.
pub fn memory_kib(pid: u32) -> Result<(u64, u64), BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// The process name (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Prefixes in the IPv4 FIB of `pid`'s network namespace: the `Prefixes:` of the `Main:`
/// trie in `/proc/PID/net/fib_triestat`. Costs one trie walk in the kernel (milliseconds at a
/// million routes), far cheaper than dumping the table. With no policy rules the kernel keeps
/// local and main in one trie, so the count includes local routes: compare against a
/// reading taken before the run.
pub fn fib_prefixes(pid: u32) -> Result<u64, BenchError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/fib_triestat"))?;
    parse_triestat(&text)
        .ok_or_else(|| BenchError::Protocol("no Main: Prefixes in fib_triestat".into()))
}

fn parse_triestat(text: &str) -> Option<u64> {
    let main = text.split("Main:").nth(1)?;
    main.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Prefixes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Run `f` on a new thread that has joined network namespace `name` (`/run/netns/NAME`);
/// sockets and threads it creates live there.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BenchError> + Send + 'static,
{
    let path = format!("/run/netns/{name}");
    let handle = std::thread::Builder::new()
        .name(format!("ns-{name}"))
        .spawn(move || {
            let file = File::open(&path)?;
            // SAFETY: setns(2) on a valid descriptor only changes this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(BenchError::Io(std::io::Error::last_os_error()));
            }
            f()
        })?;
    handle
        .join()
        .map_err(|_| BenchError::Protocol("namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_readings() {
        let pid = std::process::id();
        let (rss, hwm) = memory_kib(pid).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(fib_prefixes(pid).unwrap() > 0);
    }

    #[test]
    fn triestat_main_section() {
        let t = "Basic info: size of leaf: 48 bytes\nMain:\n\tAver depth: 2.4\n\tLeaves: 7\n\
                 \tPrefixes: 9\nLocal:\n\tPrefixes: 3\n";
        assert_eq!(parse_triestat(t), Some(9));
        assert_eq!(parse_triestat("Local:\n Prefixes: 3"), None);
    }
}
