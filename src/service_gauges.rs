//! Gauges an operator alerts on that no event updates: per tenant, how many centres of its
//! chain are connected now (zero: its alarms reach nobody; `config/alerts.yml`
//! VakaNoCentreForTenant), and the free space of the data directory's file system
//! (VakaDiskAlmostFull). Refreshed every few seconds; one series per tenant (bounded by the
//! directory).
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vaka_router::{LiveDirectory, Presence};

const EVERY: Duration = Duration::from_secs(5);

/// Starts the refresh task; abort the handle at shutdown.
pub fn spawn(
    directory: LiveDirectory,
    presence: Presence,
    data_dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut shown: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            shown = tenants(&directory, &presence, shown);
            disk(&data_dir);
        }
    })
}

/// Sets `vaka_tenant_centres_connected{tenant}`. A tenant gone from the directory gets NaN, so
/// its last count does not linger as if it were live (and `== 0` does not fire for it).
fn tenants(
    directory: &LiveDirectory,
    presence: &Presence,
    before: HashSet<String>,
) -> HashSet<String> {
    let dir = directory.load();
    let mut now = HashSet::with_capacity(dir.tenants.len());
    for t in dir.tenants.values() {
        let connected = presence
            .reachable(&t.chain)
            .into_iter()
            .filter(|up| *up)
            .count();
        let id = t.id.to_string();
        metrics::gauge!("vaka_tenant_centres_connected", "tenant" => id.clone())
            .set(connected as f64);
        now.insert(id);
    }
    for gone in before.difference(&now) {
        metrics::gauge!("vaka_tenant_centres_connected", "tenant" => gone.clone()).set(f64::NAN);
    }
    now
}

fn disk(dir: &Path) {
    match free_space(dir) {
        Ok((free, total)) => {
            metrics::gauge!("vaka_store_disk_free_bytes").set(free as f64);
            metrics::gauge!("vaka_store_disk_size_bytes").set(total as f64);
        }
        Err(e) => tracing::debug!(error = %e, dir = %dir.display(), "statvfs failed"),
    }
}

/// Bytes available to the engine and the file system's size, for the file system of `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = s.f_frsize as u64;
    Ok((s.f_bavail as u64 * block, s.f_blocks as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_real_directory() {
        let (free, total) = free_space(Path::new(".")).unwrap();
        assert!(total > 0 && free <= total, "{free} of {total}");
        assert!(free_space(Path::new("/nonexistent/dir")).is_err());
    }
}
