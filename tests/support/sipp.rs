//! Runs sipp (Debian package sip-tester) as the real SIP peer of a test, one scenario run at a
//! time, its output in files. Shared by the SCAIP front tests and the end-to-end tests.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What one sipp run left behind.
pub struct SippRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// `-trace_logs` output (the scenario's `<log>` lines).
    pub log: String,
    /// `-trace_err` output (unexpected messages).
    pub errors: String,
}

impl SippRun {
    /// The values logged as `mrs snu=.. ref=.. hbi=..` by the scenarios.
    pub fn mrs(&self) -> Vec<(u8, String, Option<u16>)> {
        self.log
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("mrs snu=")? + 8..];
                let (snu, rest) = rest.split_once(" ref=")?;
                let (reference, rest) = rest.split_once(" hbi=")?;
                let hbi = rest.split_whitespace().next().unwrap_or("");
                Some((snu.parse().ok()?, reference.to_owned(), hbi.parse().ok()))
            })
            .collect()
    }

    pub fn assert_ok(&self) {
        assert_eq!(
            self.code, 0,
            "sipp failed (exit {}):\nstdout:\n{}\nstderr:\n{}\nerrors:\n{}\nlog:\n{}",
            self.code, self.stdout, self.stderr, self.errors, self.log
        );
    }
}

/// The sipp binary; fails the test with a clear message when it is not installed.
pub fn sipp_binary() -> PathBuf {
    let found = std::env::var_os("SIPP").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("sipp"))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(p) => p,
        None => panic!(
            "sipp not found on PATH (nor in $SIPP): these tests run sipp as the real SIP peer. \
             Install it with `scripts/install-deps.sh` (Debian package sip-tester)."
        ),
    }
}

/// Runs `scenario` once (`-m 1`) against `server` over `transport` (`u1` or `t1`) as device
/// `user` with `password`, sending `mrq` as the body. `keys` adds further `-key` pairs.
pub async fn run_sipp(
    scenario: &Path,
    transport: &str,
    server: SocketAddr,
    user: &str,
    password: &str,
    mrq: &str,
    keys: &[(&str, &str)],
) -> SippRun {
    // The local port is free when chosen but may be taken by a parallel test before sipp binds
    // it; sipp then sends nothing and says so, and a run on another port is the same test.
    let mut attempt = 0;
    loop {
        let run = run_sipp_once(scenario, transport, server, user, password, mrq, keys).await;
        attempt += 1;
        if attempt < 4 && run.code != 0 && run.stderr.contains("Unable to bind main socket") {
            continue;
        }
        return run;
    }
}

// Also included by binary.rs (and by the cluster tests' support): a test that includes two
// of them compiles it twice, which is harmless (it keeps no state).
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;

async fn run_sipp_once(
    scenario: &Path,
    transport: &str,
    server: SocketAddr,
    user: &str,
    password: &str,
    mrq: &str,
    keys: &[(&str, &str)],
) -> SippRun {
    let bin = sipp_binary();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("sipp.log");
    let errors = work.path().join("sipp.err");
    let port = ports::free_udp_tcp_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(work.path())
        .arg(server.to_string())
        .args(["-sf"])
        .arg(scenario)
        .args([
            "-t",
            transport,
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
        ])
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-s", user, "-au", user, "-ap", password])
        // The digest `uri` must be the Request-URI (the scenarios' `sip:[service]@server`);
        // sipp's own default is `sip:server`, which the engine refuses.
        .arg("-auth_uri")
        .arg(format!("{user}@{server}"))
        .args(["-key", "mrq", mrq])
        .args(["-nostdin", "-trace_logs", "-trace_err"])
        .arg("-log_file")
        .arg(&log)
        .arg("-error_file")
        .arg(&errors)
        .args(["-recv_timeout", "15000"]);
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    let mut child = spawn_logged(&mut cmd, work.path());
    finish(&mut child, work.path(), Duration::from_secs(60)).await
}

/// Starts `cmd` with its output in files under `work` (not pipes: nothing can block on a full
/// pipe).
fn spawn_logged(cmd: &mut Command, work: &Path) -> std::process::Child {
    cmd.stdout(std::fs::File::create(work.join("stdout")).unwrap())
        .stderr(std::fs::File::create(work.join("stderr")).unwrap())
        .stdin(std::process::Stdio::null());
    cmd.spawn().expect("starting sipp")
}

/// Waits for sipp to finish (killed and failing the test after `within`) and reads what it
/// left in `work`.
async fn finish(child: &mut std::process::Child, work: &Path, within: Duration) -> SippRun {
    let deadline = std::time::Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let read = |p: &str| std::fs::read_to_string(work.join(p)).unwrap_or_default();
            panic!(
                "sipp did not finish within {within:?}:\nstdout:\n{}\nlog:\n{}\nerrors:\n{}",
                read("stdout"),
                read("sipp.log"),
                read("sipp.err")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let read = |p: &str| std::fs::read_to_string(work.join(p)).unwrap_or_default();
    SippRun {
        code: status.code().unwrap_or(-1),
        stdout: read("stdout"),
        stderr: read("stderr"),
        log: read("sipp.log"),
        errors: read("sipp.err"),
    }
}

/// sipp as a server (a far SIP peer the engine sends to), running `calls` calls of `scenario`.
pub struct SippServer {
    pub addr: SocketAddr,
    child: std::process::Child,
    work: tempfile::TempDir,
}

impl SippServer {
    /// Starts `scenario` as a server on a free loopback port over `transport` (`u1` or `t1`),
    /// with `-key` pairs `keys`; it exits after `calls` calls.
    pub fn start(
        scenario: &Path,
        transport: &str,
        calls: u32,
        keys: &[(&str, &str)],
    ) -> SippServer {
        let work = tempfile::tempdir().unwrap();
        let port = ports::free_udp_tcp_port();
        let mut cmd = Command::new(sipp_binary());
        cmd.current_dir(work.path())
            .arg("-sf")
            .arg(scenario)
            .args(["-t", transport, "-m", &calls.to_string()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-nostdin", "-trace_logs", "-trace_err"])
            .arg("-log_file")
            .arg(work.path().join("sipp.log"))
            .arg("-error_file")
            .arg(work.path().join("sipp.err"));
        for (k, v) in keys {
            cmd.args(["-key", k, v]);
        }
        let child = spawn_logged(&mut cmd, work.path());
        SippServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            work,
        }
    }

    /// Waits until its calls are done (at most `within`).
    pub async fn finish(mut self, within: Duration) -> SippRun {
        finish(&mut self.child, self.work.path(), within).await
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
