//! The operator's side with a real Prometheus (Debian's `prometheus`, started here) scraping a
//! real engine: `promtool` accepts `config/prometheus.yml` and `config/alerts.yml`; under
//! traffic every query of `config/grafana-dashboard.json` and the series under every alert
//! expression of a single node (the cluster's group is fired in `tests/cluster_engine.rs`)
//! return data through Prometheus's HTTP API; and in a scenario that breaks the alarm path (one
//! centre with 1 s deadlines that never answers, then gone) the unhandled-alarm,
//! deadline-missed, canary-failed (the tenant's canary gets no receipt) and no-centre alerts
//! fire. The alerts' `for:` waits are 0 s in the copy Prometheus loads here
//! (`support/prometheus.rs`), so the test does not wait minutes. Needs `prometheus` (`make
//! deps` installs it).
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/sipp.rs"]
mod sipp;

use admin::Engine;
use binary::free_udp_port;
use prometheus::{alert_exprs, config, measured, promtool, Prometheus, CLUSTER_GROUP};
use serde_json::Value;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use vaka_dc09::{Account, Header, HexId, Message, Seq, Token};

const CENTRE_TOKEN: &str = "token-of-the-watched-centre";

/// Every alert's expression but the cluster's (tests/cluster_engine.rs has those).
fn single_node_alert_exprs() -> Vec<String> {
    alert_exprs()
        .into_iter()
        .filter(|(group, _)| group != CLUSTER_GROUP)
        .map(|(_, e)| e)
        .collect()
}

fn grafana_exprs() -> Vec<String> {
    let d: Value = serde_json::from_str(&config("grafana-dashboard.json")).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn alarm_frame(account: &str, seq: u16) -> Vec<u8> {
    let header = Header {
        token: Token::SiaDcs,
        encrypted: false,
        seq: Seq::new(seq).unwrap(),
        receiver: None,
        line: HexId::new("0"),
        account: Account::new(account).unwrap(),
    };
    let data = format!("#{account}|NFA{seq:02}");
    Message::new(header, data, Vec::new(), None)
        .unwrap()
        .encode(None, &[0; 16])
        .unwrap()
}

#[test]
fn promtool_accepts_the_shipped_files() {
    promtool(&["check", "config", "prometheus.yml"]);
    promtool(&["check", "rules", "alerts.yml"]);
    // The alerts on time since a loop last worked, over synthetic series.
    promtool(&["test", "rules", "alerts_test.yml"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_every_dashboard_query_and_alert_and_the_broken_path_alerts() {
    let udp = free_udp_port();
    let mut devices = String::new();
    for i in 0..3 {
        devices += &format!(
            "[[devices]]\ntenant = \"t\"\nid = \"panel-{i}\"\ntype = \"0003\"\ndc09_account = \"10{i}0\"\n"
        );
    }
    // The tenant's canary: the engine plays device 900001 through its own SIP front.
    devices += "[[devices]]\ntenant = \"t\"\nid = \"900001\"\ntype = \"0003\"\npassword = \"canary-secret\"\n";
    let directory = format!(
        "[dc09]\nudp = \"127.0.0.1:{udp}\"\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\nreceipt_deadline_secs = 1\naccept_deadline_secs = 1\n\
         canary = {{ device = \"900001\", every_secs = 10 }}\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"{CENTRE_TOKEN}\"\n{devices}"
    );
    let engine = Engine::start(&directory, &[]);
    let prom = Prometheus::start(&[engine.http]);

    // A centre that takes offers and never answers: every alarm misses its receipt deadline
    // and, with nobody after c1 in the chain, becomes unhandled. Before any alarm, Prometheus
    // has scraped the counters at zero (as it would have, long before, in production) and
    // sees tenant t's centre connected.
    let centre = engine.centre(CENTRE_TOKEN).await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let t = prom.query("vaka_tenant_centres_connected{tenant=\"t\"}");
        let zero = prom.query("vaka_alarms_unhandled_total == 0");
        if t.first().is_some_and(|v| v["value"][1] == "1") && !zero.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "no scrape of c1 connected: {t:?} {zero:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!prom.firing().iter().any(|f| f == "VakaNoCentreForTenant"));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    for i in 0..3 {
        let frame = alarm_frame(&format!("10{i}0"), 1 + i as u16);
        for _ in 0..2 {
            // The second is a resend: counted as a duplicate, not a second alarm.
            sock.send_to(&frame, ("127.0.0.1", udp)).unwrap();
            sock.recv_from(&mut buf).expect("an answer");
        }
    }
    sock.send_to(
        b"\n0000002A\"SIA-DCS\"0001L0#1000[#1000|NFA01]\r",
        ("127.0.0.1", udp),
    )
    .unwrap(); // a damaged frame: an error series
    let _ = sock.recv_from(&mut buf);

    // Scrapes every second; the tenant gauge refreshes every 5 s.
    let until = Instant::now() + Duration::from_secs(60);
    let mut missing: Vec<String> = Vec::new();
    while Instant::now() < until {
        missing = grafana_exprs()
            .into_iter()
            .chain(
                single_node_alert_exprs()
                    .iter()
                    .map(|e| measured(e).to_owned()),
            )
            .filter(|e| prom.query(e).is_empty())
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(missing.is_empty(), "no series for: {missing:#?}");
    for (_, e) in alert_exprs() {
        prom.query(&e); // the whole expression evaluates (empty when not firing)
    }

    let wait_firing = |names: &[&str]| {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let firing = prom.firing();
            if names.iter().all(|n| firing.iter().any(|f| f == n)) {
                return firing;
            }
            assert!(
                Instant::now() < until,
                "{names:?} not firing; firing: {firing:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    wait_firing(&[
        "VakaUnhandledAlarm",
        "VakaDeadlineMissed",
        "VakaCanaryFailed",
    ]);
    let unhandled = prom.query("vaka_alarms_unhandled_total");
    assert_eq!(unhandled[0]["value"][1], "3", "{unhandled:?}");

    // The centre goes away (or was already cut off for never acknowledging its offers):
    // tenant t has no centre connected.
    drop(centre);
    wait_firing(&["VakaNoCentreForTenant"]);
    let t = prom.query("vaka_tenant_centres_connected{tenant=\"t\"}");
    assert_eq!(t[0]["value"][1], "0", "{t:?}");
    assert!(!prom.firing().iter().any(|f| f == "VakaStoreFailed"));
}
