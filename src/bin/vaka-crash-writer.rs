//! Test helper for the crash-safety test: writes events through the real router into a RocksDB
//! store and prints `ack <event id> <device> <key> <kind>` the moment each is acknowledged durable.
//! The test SIGKILLs it at random moments and checks the store against what it printed.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use vaka::config::Config;
use vaka::serve::Engine;
use vaka_core::{AlarmInfo, DeviceKey, Event, EventKind};
use vaka_router::{Reply, SubmitError};

const DEVICES: usize = 64;
const WRITERS: usize = 16;

fn config(data_dir: PathBuf) -> Config {
    let mut text = String::from(
        "[server]\nlog_level = \"warn\"\n[[tenants]]\nid = \"t\"\ncentres = []\n[router]\nshards = 2\n",
    );
    for i in 0..DEVICES {
        text.push_str(&format!(
            "[[devices]]\ntenant = \"t\"\nid = \"d{i}\"\ntype = \"0003\"\n"
        ));
    }
    let mut cfg = Config::parse(&text).expect("crash writer config is valid");
    cfg.server.data_dir = data_dir;
    cfg.listen.grpc = "127.0.0.1:0".parse().expect("address");
    cfg
}

fn main() {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(
        args.next()
            .expect("usage: vaka-crash-writer DATA_DIR ROUND"),
    );
    let round: String = args
        .next()
        .expect("usage: vaka-crash-writer DATA_DIR ROUND");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let engine = Engine::start(&config(data_dir))
            .await
            .expect("engine starts");
        let router = engine.router.clone();
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        println!("ready");
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let router = router.clone();
            let out = out.clone();
            let round = round.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let device = format!("d{}", (w + n as usize * WRITERS) % DEVICES);
                    let key = format!("{round}-{w}-{n}");
                    // Mostly telemetry; an alarm (several records in one set) every eighth event and
                    // its reset four events later, so alarms open, change and close all the time.
                    let (kind, label) = match n % 8 {
                        0 => (
                            EventKind::Alarm(AlarmInfo {
                                code: "0010".into(),
                                priority: 1,
                                text: None,
                                callback: vec![],
                            }),
                            "alarm",
                        ),
                        4 => (
                            EventKind::Reset {
                                reference: format!("{round}-{w}-{}", n - 4),
                            },
                            "alarm",
                        ),
                        _ => (
                            EventKind::Telemetry {
                                name: "temp".into(),
                                value: n as f64,
                            },
                            "telemetry",
                        ),
                    };
                    let ev = Event {
                        device: DeviceKey::new("t", device.clone()),
                        key: key.clone(),
                        received_ms: 0,
                        kind,
                        fix: None,
                        raw: vec![b'x'; 100],
                        occurred_ms: None,
                    };
                    match router.submit(ev).await {
                        Ok(Reply::Accepted { event, .. }) => {
                            let mut o = out.lock().expect("stdout");
                            let _ = writeln!(o, "ack {} {device} {key} {label}", event.0);
                            let _ = o.flush();
                        }
                        Ok(Reply::Rejected { reason }) => panic!("rejected: {reason}"),
                        Err(SubmitError::Busy) => tokio::task::yield_now().await,
                        Err(e) => panic!("submit failed: {e}"),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}
