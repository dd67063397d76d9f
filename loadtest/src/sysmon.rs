//! Server resource use from /proc: RSS and CPU of a process, sampled once a second, and finding
//! the process that owns a local port (so `--server-pid` can be left out).
use std::collections::HashSet;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerUsage {
    pub pid: u32,
    pub rss_peak_kib: u64,
    pub rss_last_kib: u64,
    /// Percent of one core (200% = both cores of this machine busy).
    pub cpu_mean_pct: f64,
    pub cpu_peak_pct: f64,
}

/// Resident set size in KiB; `None` when the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Linux reports CPU time in USER_HZ, which is 100 on every architecture it runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Samples `pid` once a second until dropped.
pub struct Monitor {
    usage: Arc<Mutex<ServerUsage>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub fn start(pid: u32) -> Monitor {
        let usage = Arc::new(Mutex::new(ServerUsage {
            pid,
            ..ServerUsage::default()
        }));
        let u = usage.clone();
        let task = tokio::spawn(async move {
            let (t0, c0) = (Instant::now(), cpu_ticks(pid).unwrap_or(0));
            let (mut last_t, mut last_c) = (t0, c0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (Some(rss), Some(c)) = (rss_kib(pid), cpu_ticks(pid)) else {
                    return; // the server is gone; keep what was seen
                };
                let now = Instant::now();
                let pct = |ticks: u64, over: Duration| {
                    ticks as f64 / TICKS_PER_SEC / over.as_secs_f64().max(1e-9) * 100.0
                };
                let mut g = u.lock().unwrap_or_else(|p| p.into_inner());
                g.rss_last_kib = rss;
                g.rss_peak_kib = g.rss_peak_kib.max(rss);
                g.cpu_peak_pct = g
                    .cpu_peak_pct
                    .max(pct(c.saturating_sub(last_c), now - last_t));
                g.cpu_mean_pct = pct(c.saturating_sub(c0), now - t0);
                (last_t, last_c) = (now, c);
            }
        });
        Monitor { usage, task }
    }

    /// What was seen so far (RSS also sampled now, if the process is still there).
    pub fn usage(&self) -> ServerUsage {
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(rss) = rss_kib(u.pid) {
            u.rss_last_kib = rss;
            u.rss_peak_kib = u.rss_peak_kib.max(rss);
        }
        u
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Socket inodes bound to local `port` in a /proc/net table (udp, tcp, ...; v4 or v6).
fn inodes_in(table: &str, port: u16) -> Vec<u64> {
    let Ok(s) = fs::read_to_string(table) else {
        return Vec::new();
    };
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let p = u16::from_str_radix(local_port, 16).ok()?;
            // A TCP socket must be listening (state 0A); other states are client connections.
            let listening = !table.contains("tcp") || f.get(3) == Some(&"0A");
            (p == port && listening).then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// The process owning a socket bound to local `port` (UDP, or a listening TCP socket).
pub fn pid_by_port(port: u16) -> Option<u32> {
    let inodes: HashSet<u64> = ["udp", "udp6", "tcp", "tcp6"]
        .iter()
        .flat_map(|t| inodes_in(&format!("/proc/net/{t}"), port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_of_a_port_and_reads_its_usage() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id();
        assert_eq!(pid_by_port(udp.local_addr().unwrap().port()), Some(me));
        assert_eq!(pid_by_port(tcp.local_addr().unwrap().port()), Some(me));
        drop(udp);
        assert!(rss_kib(me).unwrap() > 0);
        assert!(cpu_ticks(me).is_some());
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
