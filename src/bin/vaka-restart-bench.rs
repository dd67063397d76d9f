//! Restart-to-ready benchmark (BENCHMARKS.md, "Restart"): a directory of `--devices` devices and a
//! store holding `--open-alarms` open alarms, then `vaka serve` started `--runs` times on it,
//! each timed from spawn to its `vaka ready` log line, with the phases of its `store recovered`
//! line. Each run is stopped with SIGTERM before the next.
//!
//! The devices are written to the configuration file for the first start, which applies them to
//! the store's directory (the bootstrap); the timed starts then read them from the store with a
//! configuration without devices (`--from store`, the default), or keep reading the file on
//! every start (`--from file`: a fleet kept in the bootstrap file).
//!
//! `vaka-restart-bench [--devices N] [--open-alarms N] [--runs N] [--dir PATH] [--from store|file]`
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vaka::config::Config;
use vaka::serve::Engine;
use vaka_core::{AlarmInfo, DeviceKey, Event, EventKind};
use vaka_router::Reply;

struct Args {
    devices: usize,
    open_alarms: usize,
    runs: usize,
    dir: Option<PathBuf>,
    /// Timed starts read the devices from the store (true) or from the file each time.
    from_store: bool,
}

fn args() -> Args {
    let mut a = Args {
        devices: 300_000,
        open_alarms: 10_000,
        runs: 5,
        dir: None,
        from_store: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || value.parse::<usize>().expect("a number");
        match flag.as_str() {
            "--devices" => a.devices = number(),
            "--open-alarms" => a.open_alarms = number(),
            "--runs" => a.runs = number(),
            "--dir" => a.dir = Some(PathBuf::from(&value)),
            "--from" => a.from_store = value == "store",
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.open_alarms <= a.devices, "one open alarm per device");
    a
}

/// The configuration file: one tenant and centre, `devices` devices, JSON logs.
fn write_config(dir: &Path, devices: usize) -> PathBuf {
    let mut text = format!(
        "[server]\ndata_dir = \"{}\"\nlog_format = \"json\"\nlog_level = \"info\"\n\
         [listen]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"bench-centre-token\"\n",
        dir.join("data").display()
    );
    for i in 0..devices {
        text.push_str(&format!(
            "[[devices]]\ntenant = \"t\"\nid = \"d{i}\"\ntype = \"0003\"\n"
        ));
    }
    let path = dir.join("vaka.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Opens the engine in this process and raises one alarm on each of the first `n` devices
/// (no centre is connected, so they stay open).
fn populate(config: &Path, n: usize) {
    let mut cfg = Config::load(config).expect("config");
    cfg.listen.grpc = "127.0.0.1:0".parse().expect("address");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let engine = Engine::start(&cfg).await.expect("engine");
        let mut pending = tokio::task::JoinSet::new();
        for i in 0..n {
            let router = engine.router.clone();
            pending.spawn(async move {
                let ev = Event {
                    device: DeviceKey::new("t", format!("d{i}")),
                    key: format!("bench-{i}"),
                    received_ms: 0,
                    kind: EventKind::Alarm(AlarmInfo {
                        code: "0010".into(),
                        priority: 3,
                        text: None,
                        callback: vec![],
                    }),
                    fix: None,
                    raw: b"<mrq/>".to_vec(),
                    occurred_ms: None,
                };
                router.submit(ev).await
            });
            while pending.len() >= 512 {
                accepted(pending.join_next().await);
            }
        }
        while let Some(r) = pending.join_next().await {
            accepted(Some(r));
        }
        engine.shutdown().await.expect("shutdown");
    });
}

fn accepted<E: std::fmt::Debug>(r: Option<Result<Result<Reply, E>, tokio::task::JoinError>>) {
    match r {
        Some(Ok(Ok(Reply::Accepted { .. }))) | None => {}
        Some(other) => panic!("alarm not accepted: {other:?}"),
    }
}

/// One start of `vaka serve`: milliseconds to `vaka ready`, and the two log lines.
fn timed_start(vaka: &Path, config: &Path) -> (f64, String, String) {
    let began = Instant::now();
    let mut child = Command::new(vaka)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vaka serve");
    // The log is read to its end on its own thread: a closed pipe would fail the server's
    // later log lines (its shutdown).
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut recovered = String::new();
    let mut ready = String::new();
    for line in rx.iter() {
        if line.contains("\"store recovered\"") {
            recovered = line;
        } else if line.contains("\"vaka ready\"") {
            ready = line;
            break;
        }
    }
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    assert!(!ready.is_empty(), "vaka serve ended before it was ready");
    // SIGTERM: a clean stop, as an upgrade or a restart by systemd does it.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    let _ = reader.join();
    assert!(status.success(), "vaka serve exited {status}");
    (ms, recovered, ready)
}

/// The `"name":value` pairs of a JSON log line's fields that end in `_ms`, and counts.
fn fields(line: &str, names: &[&str]) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let f = &v["fields"];
    names
        .iter()
        .map(|n| format!("{n}={}", f[*n]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let a = args();
    let own_dir = a.dir.is_none();
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("vaka-restart-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("dir");
    let vaka = std::env::current_exe()
        .expect("own path")
        .with_file_name("vaka");
    let config = write_config(&dir, a.devices);
    let setup = Instant::now();
    populate(&config, a.open_alarms);
    if a.from_store {
        write_config(&dir, 0);
    }
    println!(
        "restart bench: {} devices (read from the {}), {} open alarms (set up in {:.1} s), config {:.1} MB",
        a.devices,
        if a.from_store { "store" } else { "file" },
        a.open_alarms,
        setup.elapsed().as_secs_f64(),
        std::fs::metadata(&config).map_or(0, |m| m.len()) as f64 / 1e6
    );
    let mut times = Vec::new();
    for run in 1..=a.runs {
        let (ms, recovered, ready) = timed_start(&vaka, &config);
        println!(
            "run {run}: ready after {ms:.0} ms | {} | {}",
            fields(&ready, &["startup_ms", "config_ms"]),
            fields(
                &recovered,
                &[
                    "open_ms",
                    "recover_ms",
                    "directory_ms",
                    "router_ms",
                    "devices",
                    "open_alarms"
                ]
            )
        );
        times.push(ms);
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort_by(f64::total_cmp);
    println!(
        "restart to ready: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
    if own_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
