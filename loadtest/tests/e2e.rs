//! The tool end to end through its library entry point: an in-process engine (RocksDB in a temp
//! dir, router, vaka/1 QUIC server, SCAIP front over SIP UDP/TCP and the centre gRPC API, all on
//! 127.0.0.1), demo certificates, short low-rate runs.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tempfile::TempDir;
use vaka_centre::auth::Credentials;
use vaka_centre::server::CentreServer;
use vaka_centre::{CentreApiConfig, CentreService};
use vaka_core::directory::{Centre, Device, Directory, Tenant};
use vaka_core::{CentreId, DeviceKey};
use vaka_ingest::certs::generate_demo;
use vaka_ingest::quic::{QuicConfig, QuicServer};
use vaka_ingest::sip::{sip_credential, SipConfig, SipServer};
use vaka_load::{run, Options};
use vaka_router::{Clock, Presence, Router, RouterConfig};
use vaka_store::{GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};

/// Digits: the ids are SCAIP controller ids (cid) too.
const DEVICES: [&str; 4] = ["100", "101", "102", "103"];
const PASSWORD: &str = "load-pass";
const TOKEN: &str = "centre-token";

struct Engine {
    dir: TempDir,
    store: Store,
    router: Arc<Router>,
    server: QuicServer,
    sip: SipServer,
    centre: CentreServer,
}

impl Engine {
    async fn start() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        generate_demo(&certs, "t1", &DEVICES).unwrap();
        let mut d = Directory::default();
        d.insert_tenant(Tenant::new("t1", &["c1"]));
        d.insert_centre(Centre::new("c1", &["t1"]));
        for id in DEVICES {
            d.insert_device(Device {
                sip: Some(sip_credential(id, "vaka.test", PASSWORD, false)),
                ..Device::new(DeviceKey::new("t1", id), "0051")
            });
        }
        let rc = RouterConfig {
            shards: 2,
            ..RouterConfig::default()
        };
        let backend = RocksBackend::open(&RocksConfig::new(dir.path().join("db"))).unwrap();
        let (store, rec) = Store::open(
            Arc::new(backend),
            GroupConfig::default(),
            RecoverOptions {
                now_ms: Clock::new().now_ms(),
                idem_window_ms: rc.idempotency_window_ms,
            },
        )
        .unwrap();
        let directory = Arc::new(d);
        let presence = Presence::new();
        presence.connected(&CentreId::new("c1"));
        let router = Router::start(
            rc,
            store.clone(),
            rec,
            directory.clone(),
            presence,
            Clock::new(),
        );
        let cfg = QuicConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            server_cert: certs.join("server.pem"),
            server_key: certs.join("server-key.pem"),
            tenant_cas: [("t1".to_string(), certs.join("t1/ca.pem"))].into(),
            drain_timeout_secs: 2,
            ..QuicConfig::default()
        };
        let server = QuicServer::start(&cfg, router.clone(), directory.clone()).unwrap();
        let sip_cfg = SipConfig {
            realm: "vaka.test".into(),
            tls: false,
            drain_timeout_secs: 2,
            ..SipConfig::default()
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sip = SipServer::start(
            &sip_cfg,
            sip_cfg.listen(any, any, any),
            router.clone(),
            directory.clone(),
            Clock::new(),
        )
        .unwrap();
        let service = CentreService::new(
            store.clone(),
            router.clone(),
            directory,
            Credentials::new([(CentreId::new("c1"), Some(TOKEN.to_string()))]),
            CentreApiConfig::default(),
            Clock::new(),
        );
        let listener = tokio::net::TcpListener::bind(any).await.unwrap();
        let centre = CentreServer::serve(listener, service, None).unwrap();
        Engine {
            dir,
            store,
            router,
            server,
            sip,
            centre,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn sip_udp(&self) -> SocketAddr {
        self.sip.addrs().udp.unwrap()
    }

    fn sip_tcp(&self) -> SocketAddr {
        self.sip.addrs().tcp.unwrap()
    }

    /// The tool reads its devices from a vaka.toml, as it would from the server's.
    fn config(&self) -> PathBuf {
        self.config_with("vaka.toml", Some(PASSWORD))
    }

    fn config_with(&self, name: &str, password: Option<&str>) -> PathBuf {
        let p = self.dir.path().join(name);
        let mut text = String::new();
        for id in DEVICES {
            text += &format!("[[devices]]\ntenant = \"t1\"\nid = \"{id}\"\ntype = \"0051\"\n");
            if let Some(pw) = password {
                text += &format!("password = \"{pw}\"\n");
            }
            text += "\n";
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    async fn stop(self) {
        self.centre.shutdown(Duration::from_secs(2)).await;
        self.sip.shutdown().await;
        self.server.shutdown().await;
        self.router.shutdown().await;
        self.store.close().unwrap();
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: Options,
}

fn options(engine: &Engine, extra: &[&str]) -> Options {
    options_for(engine, "mixed", engine.addr(), &engine.config(), extra)
}

fn options_for(
    engine: &Engine,
    scenario: &str,
    server: SocketAddr,
    config: &Path,
    extra: &[&str],
) -> Options {
    let (addr, certs) = (server.to_string(), engine.certs());
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let mut args: Vec<String> = [
        "vaka-load",
        scenario,
        "--rate",
        "200",
        "--duration",
        "1",
        "--drain",
        "10",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--server".into(), addr, "--config".into(), path(config)]);
    args.extend([
        "--certs".into(),
        path(&certs),
        "--endpoints".into(),
        "2".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(args).run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_of_mixed_load_is_all_acked_and_nothing_is_lost() {
    let engine = Engine::start().await;
    let out = run(&options(&engine, &[]), None).await.unwrap();
    let s = &out.ours.side;
    assert_eq!(s.sent, 200, "rate 200 for 1 s");
    assert_eq!(s.acked, s.sent, "errors: {:?}", s.errors);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.lost, 0);
    assert_eq!(s.delivered, s.acked);
    assert!(s.latency_ms.ack.p99.is_some());
    assert!(s.throughput_per_s > 100.0, "{}", s.throughput_per_s);
    assert_eq!(
        out.ours.measured.counts.not_treated, 0,
        "the centre is present"
    );
    // The server runs in this process: found by its port.
    let server = out.ours.server.as_ref().expect("server usage");
    assert_eq!(server.pid, std::process::id());
    assert!(server.rss_peak_kib > 0);
    assert!(out.report.peer.is_none() && out.report.ratio.is_none());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_devices_and_remote_targets_are_refused_before_any_load() {
    let engine = Engine::start().await;
    let e = run(&options(&engine, &["--devices", "5"]), None)
        .await
        .err()
        .unwrap();
    assert!(e.contains("fleet-config"), "{e}");
    let mut o = options(&engine, &[]);
    o.server = Some("192.0.2.1:4433".parse().unwrap());
    let e = run(&o, None).await.err().unwrap();
    assert!(e.contains("--allow-remote"), "{e}");
    engine.stop().await;
}

/// Mosquitto is installed by scripts/install-deps.sh: a missing binary fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_pattern_against_mosquitto_gives_a_peer_and_a_ratio() {
    vaka_load::mqtt::find_mosquitto(None)
        .expect("mosquitto is needed for this test: run scripts/install-deps.sh");
    let engine = Engine::start().await;
    let out = run(&options(&engine, &["--peer", "mosquitto"]), None)
        .await
        .unwrap();
    let peer = out.report.peer.as_ref().expect("peer side");
    assert_eq!(peer.sent, 200);
    assert_eq!(peer.acked, 200, "{:?}", peer.errors);
    assert_eq!(peer.delivered, 200, "the subscriber got every message");
    assert_eq!(peer.lost, 0);
    assert!(peer.latency_ms.offer.p99.is_some());
    assert!(out.report.ratio.unwrap() > 0.0);
    let broker = out
        .peer
        .as_ref()
        .unwrap()
        .server
        .as_ref()
        .expect("broker usage");
    assert_ne!(broker.pid, std::process::id());
    let json: serde_json::Value = serde_json::from_str(&out.report.to_json()).unwrap();
    assert!(json["peer"]["latency_ms"]["ack"]["p50"].is_number());
    engine.stop().await;
}

/// The centre simulator attached to the engine's centre API.
fn centre_args(engine: &Engine) -> Vec<String> {
    vec![
        "--centre".into(),
        "--centre-addr".into(),
        engine.centre.local_addr().to_string(),
        "--centre-token".into(),
        TOKEN.into(),
    ]
}

/// A second of `mixed`, then an alarm storm (every device alarms once), over SCAIP with the
/// centre simulator: everything acked, every alarm offered to the centre, nothing lost.
async fn scaip_runs_are_acked_and_alarms_reach_the_centre(transport: &str) {
    let engine = Engine::start().await;
    let server = if transport == "sip-udp" {
        engine.sip_udp()
    } else {
        engine.sip_tcp()
    };
    let mut extra: Vec<String> = vec!["--transport".into(), transport.into()];
    extra.extend(centre_args(&engine));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

    let o = options_for(&engine, "mixed", server, &engine.config(), &extra);
    let out = run(&o, None).await.unwrap();
    let s = &out.ours.side;
    assert_eq!(out.ours.label, format!("vaka/{transport}"));
    assert_eq!(s.sent, 200, "rate 200 for 1 s");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.acked, s.sent);
    assert_eq!(s.lost, 0);
    assert_eq!(s.delivered, s.acked, "alarms delivered at their offer");
    assert!(s.latency_ms.ack.p99.is_some());
    assert_eq!(out.ours.measured.counts.not_treated, 0);
    assert_eq!(
        out.ours.server.as_ref().expect("server usage").pid,
        std::process::id()
    );

    let o = options_for(&engine, "alarm-storm", server, &engine.config(), &extra);
    let out = run(&o, None).await.unwrap();
    let s = &out.ours.side;
    assert_eq!(s.sent, DEVICES.len() as u64, "each device alarms once");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!((s.acked, s.delivered, s.lost), (s.sent, s.sent, 0));
    assert!(
        s.latency_ms.offer.p99.is_some(),
        "the centre simulator was offered the alarms"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaip_over_udp_is_all_acked_and_alarms_reach_the_centre() {
    scaip_runs_are_acked_and_alarms_reach_the_centre("sip-udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaip_over_tcp_is_all_acked_and_alarms_reach_the_centre() {
    scaip_runs_are_acked_and_alarms_reach_the_centre("sip-tcp").await;
}

/// Devices without a SIP password are refused before any load; a wrong one is `forbidden`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaip_needs_passwords_and_wrong_ones_are_forbidden() {
    let engine = Engine::start().await;
    let udp = engine.sip_udp();
    let args = ["--transport", "sip-udp", "--count", "20"];
    let bare = engine.config_with("bare.toml", None);
    let e = run(&options_for(&engine, "mixed", udp, &bare, &args), None)
        .await
        .err()
        .unwrap();
    assert!(e.contains("password") && e.contains("4 of the 4"), "{e}");
    let wrong = engine.config_with("wrong.toml", Some("not-it"));
    let out = run(&options_for(&engine, "mixed", udp, &wrong, &args), None)
        .await
        .unwrap();
    let s = &out.ours.side;
    assert_eq!(s.sent, 20);
    assert_eq!(s.acked, 0);
    assert_eq!(s.errors.get("forbidden"), Some(&20), "{:?}", s.errors);
    engine.stop().await;
}
