//! The descriptor budget (invariant 13): the soft open-files limit is raised to the hard one at
//! start, and shares are set aside for the store (RocksDB's table files and logs) and the centre
//! API before SIP over TCP/TLS gets what is left, so that a flood of device connections is
//! refused at accept while RocksDB can still open its next log file.
//! QUIC needs no descriptor per connection (every connection shares the endpoint's UDP socket),
//! so its connection cap is not part of this budget.

/// Listeners, UDP and QUIC sockets, epoll and event descriptors, stdio, the metrics endpoint,
/// `/proc` reads.
pub const BASE_RESERVE: u64 = 64;
/// What RocksDB needs beyond its table files: logs, MANIFEST, LOG, LOCK, directory syncs, and
/// our mark files.
pub const STORE_EXTRA: u64 = 32;
/// Centre connections and their streams.
pub const CENTRE_RESERVE: u64 = 64;
/// Below this many SIP connections the budget is a misconfiguration, not a cap.
const MIN_SIP: u64 = 16;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft before, soft now, hard).
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur, lim.rlim_max))
}

/// The SIP TCP/TLS connection cap: the configured one, lowered to what `limit` descriptors leave
/// after the reserves (DC-09's TCP connections, `dc09.max_connections`, are one of them: they
/// are capped by their own configuration). An error when too little is left to be worth starting.
pub fn sip_connection_cap(
    limit: u64,
    store_max_open_files: usize,
    dc09_connections: usize,
    configured: usize,
) -> Result<usize, String> {
    let reserved = BASE_RESERVE
        + STORE_EXTRA
        + store_max_open_files as u64
        + CENTRE_RESERVE
        + dc09_connections as u64;
    let left = limit.saturating_sub(reserved);
    if left < MIN_SIP {
        return Err(format!(
            "the open files limit ({limit}) leaves {left} descriptors for SIP connections after \
             {reserved} reserved (store.max_open_files {store_max_open_files} + {STORE_EXTRA}, \
             centre API {CENTRE_RESERVE}, engine {BASE_RESERVE}, dc09.max_connections \
             {dc09_connections}): raise the hard limit \
             (ulimit -Hn, systemd LimitNOFILE) or lower store.max_open_files"
        ));
    }
    Ok(configured.min(usize::try_from(left).unwrap_or(usize::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sip_cap_is_what_the_reserves_leave_and_never_above_the_config() {
        assert_eq!(sip_connection_cap(1_000_000, 1024, 0, 20_000), Ok(20_000));
        assert_eq!(sip_connection_cap(4096, 1024, 0, 20_000), Ok(4096 - 1184));
        assert_eq!(sip_connection_cap(4096, 1024, 100, 20_000), Ok(4096 - 1284));
        assert_eq!(sip_connection_cap(256, 64, 0, 20_000), Ok(32));
        assert!(sip_connection_cap(1024, 1024, 0, 20_000)
            .unwrap_err()
            .contains("store.max_open_files"));
    }
}
