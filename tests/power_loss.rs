//! Invariant 1 across a power cut, not only a SIGKILL: a SIGKILLed process's writes still
//! reach the disk from the page cache; a power cut loses every write not yet synced. The
//! engine (`vaka-crash-writer`: the real engine writing through the router, printing each
//! event the moment it is acknowledged durable) runs on a file system that keeps unsynced
//! contents in memory (`support/powercut.rs`, FUSE); it is SIGKILLed at a random moment, the
//! unsynced contents are thrown away, and the store, opened on what was synced, must hold every
//! event acknowledged in every round so far, with no write set half applied.
//!
//! Needs root and /dev/fuse (skipped, saying so, otherwise). `VAKA_POWER_CUTS=N` for N cuts
//! (default 5 in the suite).
#[path = "support/crash.rs"]
mod crash;
#[path = "support/powercut.rs"]
mod powercut;

use rand::Rng;
use std::time::{Duration, Instant};

fn can_mount_fuse() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::path::Path::new("/dev/fuse").exists()
}

#[test]
fn a_power_cut_loses_no_acknowledged_event() {
    if !can_mount_fuse() {
        eprintln!("skipped: needs root and /dev/fuse to mount the power-cut file system");
        return;
    }
    let cuts: usize = std::env::var("VAKA_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("disk"), dir.path().join("mnt"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let mut rng = rand::rng();
    let started = Instant::now();
    let (mut acked, mut lost_files, mut lost_bytes) = (Vec::new(), 0, 0);
    for round in 0..cuts {
        let disk = powercut::Mounted::mount(&backing, &mnt).expect("mount the power-cut fs");
        let kill_after = Duration::from_millis(rng.random_range(1_500..3_000));
        let acks = crash::run_and_kill(&mnt, round, kill_after);
        let cut = disk.cut();
        let n = acks.len();
        acked.extend(acks);
        // On the disk as the power left it (no FUSE): everything acknowledged so far.
        let alarms = crash::verify(&backing, &acked, round);
        lost_files += cut.files.len();
        lost_bytes += cut.bytes;
        eprintln!(
            "cut {round}: killed after {kill_after:?}, {n} acks, unsynced changes thrown away \
             from {:?} ({} bytes), {} bytes synced; {} acks checked, {alarms} alarms in store",
            cut.files,
            cut.bytes,
            cut.synced_bytes,
            acked.len()
        );
    }
    assert!(
        acked.len() > cuts * 10,
        "the writer must have acknowledged work to check ({})",
        acked.len()
    );
    assert!(
        lost_files > 0,
        "no cut threw anything away: the test would not see a missing fsync"
    );
    eprintln!(
        "{cuts} power cuts, {} acknowledged events all found, {lost_files} files' unsynced \
         contents ({lost_bytes} bytes) thrown away, in {:?}",
        acked.len(),
        started.elapsed()
    );
}
