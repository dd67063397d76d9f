//! Invariant 12, damage is loud, through the real binaries: a child engine writes acknowledged
//! events into a real data directory and is SIGKILLed; copies of that directory are damaged (bytes
//! flipped in the write-ahead log, the log cut in half, the log deleted, a table file damaged) and
//! `vaka serve` must refuse each one with a message naming the file and the way out; the
//! undamaged copy must start. `vaka store salvage` must report what was lost, and after it the
//! engine starts and gives ids above every id given before.
#[path = "support/binary.rs"]
mod binary;

use binary::{free_tcp_port, get_metrics, vaka_bin};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vaka_store::testing::flip;

/// Runs the crash writer on `data` for `run`, SIGKILLs it and returns the acknowledged ids.
fn write_and_kill(data: &Path, round: &str, run: Duration) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vaka-crash-writer"))
        .arg(data)
        .arg(round)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crash writer");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ack ") {
                ids.push(rest.split(' ').next().unwrap().parse::<u64>().unwrap());
            }
        }
        ids
    });
    std::thread::sleep(run);
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "the writer must have been killed: {err}");
    let ids = reader.join().unwrap();
    assert!(
        ids.len() > 100,
        "the writer must have acknowledged work: {err}"
    );
    ids
}

/// A data directory of a SIGKILLed engine, and the ids it acknowledged.
fn killed_engine() -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ids = write_and_kill(&data, "a", Duration::from_millis(1500));
    (dir, ids)
}

fn config(dir: &Path, data: &Path, http: u16) -> PathBuf {
    let cfg = dir.join(format!("vaka-{http}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = \"{}\"\nshutdown_timeout_secs = 5\n[listen]\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:0\"\n",
            data.display()
        ),
    )
    .unwrap();
    cfg
}

fn serve(dir: &Path, data: &Path) -> (Child, u16) {
    let http = free_tcp_port();
    let child = Command::new(vaka_bin())
        .args(["serve", "--config"])
        .arg(config(dir, data, http))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, http)
}

/// `vaka serve` on `data` must exit non-zero by itself; returns what it said.
fn serve_refuses(dir: &Path, data: &Path) -> String {
    let (mut child, _) = serve(dir, data);
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("vaka serve started on a damaged store");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("vaka store salvage"), "says what to do: {err}");
    assert!(err.contains("backup"), "says what to do: {err}");
    err
}

/// `vaka serve` on `data` starts (recovers and serves /metrics), then stops cleanly on SIGTERM.
fn serve_starts_and_stops(dir: &Path, data: &Path) {
    let (mut child, http) = serve(dir, data);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("vaka serve exited ({s}) on a sound store: {err}");
        }
        if get_metrics(http).is_some_and(|b| b.contains("vaka_store_recovery_seconds")) {
            break;
        }
        assert!(Instant::now() < until, "vaka serve did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean shutdown, got {status}: {err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn files(db: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// The write-ahead log of a killed engine (the newest .log, which holds its events).
fn wal(data: &Path) -> PathBuf {
    let wal = files(&data.join("db"), "log")
        .pop()
        .expect("a write-ahead log");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 100_000,
        "events in the log"
    );
    wal
}

/// A copy of the killed engine's data directory, to damage.
fn copy_of(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    copy_dir(&dir.join("data"), &copy);
    copy
}

#[test]
fn a_killed_engine_restarts_cleanly() {
    let (dir, _) = killed_engine();
    serve_starts_and_stops(dir.path(), &dir.path().join("data"));
}

#[test]
fn flipped_bytes_in_the_wal_refuse_to_start_naming_the_file() {
    let (dir, _) = killed_engine();
    let data = copy_of(dir.path(), "flipped");
    let wal = wal(&data);
    flip(&wal, 2000, 0xff);
    let err = serve_refuses(dir.path(), &data);
    assert!(
        err.contains(&wal.display().to_string()),
        "names the log: {err}"
    );
}

#[test]
fn a_cut_wal_refuses_to_start() {
    let (dir, _) = killed_engine();
    let data = copy_of(dir.path(), "cut");
    let wal = wal(&data);
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = serve_refuses(dir.path(), &data);
    assert!(err.contains("acknowledged writes are missing"), "{err}");
    assert!(
        err.contains(&wal.display().to_string()),
        "names the log: {err}"
    );
}

#[test]
fn a_deleted_wal_refuses_to_start() {
    let (dir, _) = killed_engine();
    let data = copy_of(dir.path(), "deleted");
    std::fs::remove_file(wal(&data)).unwrap();
    let err = serve_refuses(dir.path(), &data);
    assert!(err.contains("acknowledged writes are missing"), "{err}");
    assert!(err.contains("no write-ahead log file"), "{err}");
}

#[test]
fn a_damaged_table_file_refuses_to_start() {
    let (dir, _) = killed_engine();
    let data = dir.path().join("data");
    // A clean stop flushes everything into table files.
    serve_starts_and_stops(dir.path(), &data);
    let damaged = copy_of(dir.path(), "sst");
    let sst = files(&damaged.join("db"), "sst")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("table files after a clean stop");
    let len = std::fs::metadata(&sst).unwrap().len();
    // The blocks an open reads (index, meta, footer) sit at the end; a damaged data block
    // elsewhere is found when it is read (ARCHITECTURE.md, "Table-file damage").
    flip(&sst, len - 100, 0xff);
    let err = serve_refuses(dir.path(), &damaged);
    let name = sst.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&name), "names the table file: {err}");
}

fn salvage(data: &Path) -> Output {
    Command::new(vaka_bin())
        .args(["store", "salvage", "--data-dir"])
        .arg(data)
        .output()
        .unwrap()
}

fn field(report: &str, key: &str) -> u64 {
    let line = report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} in the report:\n{report}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn salvage_reports_what_was_lost_and_no_id_is_given_twice() {
    let (dir, acked) = killed_engine();
    let max_acked = *acked.iter().max().unwrap();
    let data = copy_of(dir.path(), "salvaged");
    flip(&wal(&data), 2000, 0xff);
    serve_refuses(dir.path(), &data);

    let out = salvage(&data);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The mark knows every acknowledged event (and perhaps a last synced group not yet printed).
    let durable = field(&report, "last durable event id (mark)");
    assert!(durable >= max_acked, "{report}");
    let recovered = field(&report, "last event id recovered");
    assert!(recovered < max_acked, "flipped bytes lose events: {report}");
    assert!(
        report.contains(&format!("ids {}..={durable}", recovered + 1)),
        "{report}"
    );
    let next = field(&report, "next id");
    assert!(next > durable, "{report}");
    let copy = report
        .lines()
        .find_map(|l| l.strip_prefix("copy of the store as it was: "))
        .unwrap();
    assert!(
        files(Path::new(copy), "log")
            .iter()
            .any(|f| f.metadata().unwrap().len() > 100_000),
        "the damaged log is kept in {copy}"
    );

    // The engine starts on the salvaged store, and every id it gives is new.
    serve_starts_and_stops(dir.path(), &data);
    let after = write_and_kill(&data, "b", Duration::from_millis(1000));
    let first = *after.iter().min().unwrap();
    assert!(
        first > max_acked && first >= next,
        "id {first} may have been given before (max acked {max_acked}, next {next})"
    );
}
