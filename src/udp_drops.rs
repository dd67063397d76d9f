//! Datagrams the kernel dropped at our UDP sockets because their receive queue was full: the
//! first sign that a front cannot keep up (QUIC recovers by retransmission, SIP by its timers,
//! both at the cost of latency), and visible in none of our own counters. Linux: the `drops`
//! column of /proc/net/udp and /proc/net/udp6, for the sockets this process holds.
use std::collections::HashSet;
use std::time::Duration;

/// How often the counters are brought up to date.
const PERIOD: Duration = Duration::from_secs(5);

/// Keeps `vaka_udp_drops_total{socket=LABEL}` equal to the kernel's drop count of this
/// process's UDP sockets bound to each `(label, port)`. Does nothing where /proc is absent.
pub fn spawn(sockets: Vec<(&'static str, u16)>) -> Option<tokio::task::JoinHandle<()>> {
    if sockets.is_empty() || std::fs::metadata("/proc/net/udp").is_err() {
        return None;
    }
    metrics::describe_counter!(
        "vaka_udp_drops_total",
        metrics::Unit::Count,
        "Datagrams the kernel dropped at a full receive queue of our UDP sockets, by front"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            // File reads block: off the runtime's workers.
            let read = tokio::task::spawn_blocking(|| {
                let tables = ["/proc/net/udp", "/proc/net/udp6"]
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default());
                (own_socket_inodes(), tables)
            });
            let Ok((inodes, tables)) = read.await else {
                return;
            };
            for (label, port) in &sockets {
                let drops: u64 = tables.iter().map(|t| drops(t, *port, &inodes)).sum();
                metrics::counter!("vaka_udp_drops_total", "socket" => *label).absolute(drops);
            }
        }
    }))
}

/// Inodes of the sockets among this process's open files.
fn own_socket_inodes() -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Sum of the `drops` column over the rows of a /proc/net/udp table whose local port is `port`
/// and whose inode is one of `inodes`.
fn drops(table: &str, port: u16, inodes: &HashSet<u64>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            let local_port = cols.get(1)?.rsplit_once(':')?.1;
            let inode: u64 = cols.get(9)?.parse().ok()?;
            let row_drops: u64 = cols.get(12)?.parse().ok()?;
            (u16::from_str_radix(local_port, 16).ok()? == port && inodes.contains(&inode))
                .then_some(row_drops)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  110: 00000000:1151 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  111: 00000000:1151 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 5
  112: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 99
  113: 00000000:1151 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 9999 2 0000000000000000 1000
";

    #[test]
    fn sums_the_drops_of_our_sockets_on_a_port() {
        let ours: HashSet<u64> = [4242, 4343, 4444].into();
        // 0x1151 = 4433 (two endpoints with SO_REUSEPORT; 9999 belongs to another process),
        // 0x13C4 = 5060.
        assert_eq!(drops(TABLE, 4433, &ours), 22);
        assert_eq!(drops(TABLE, 5060, &ours), 99);
        assert_eq!(drops(TABLE, 5061, &ours), 0);
        assert_eq!(drops("", 4433, &ours), 0);
        assert_eq!(drops("header\ngarbage row\n", 4433, &ours), 0);
    }

    #[test]
    fn finds_this_process_sockets() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        let ours = own_socket_inodes();
        let row = table
            .lines()
            .find(|r| {
                r.split_whitespace()
                    .nth(1)
                    .is_some_and(|l| l.ends_with(&format!(":{port:04X}")))
            })
            .expect("our socket is listed");
        let inode: u64 = row.split_whitespace().nth(9).unwrap().parse().unwrap();
        assert!(ours.contains(&inode));
        assert_eq!(drops(&table, port, &ours), 0);
    }
}
