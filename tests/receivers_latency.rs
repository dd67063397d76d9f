//! Latency of people receivers (ignored by default; a measurement, not a check): 1,000 alarms at
//! 100/s from 1,000 devices (one QUIC gateway sending for them) to a responder receiver whose
//! member has a phone and an e-mail address. Measured per alarm from the device's send to the
//! SMS gateway's receipt of the request (a local HTTP server) and to the SMTP server's
//! acceptance of the e-mail (`python3 -m aiosmtpd`, the message file's time). Prints p50/p90/p99.
//!
//!     cargo test --workspace --test receivers_latency -- --ignored --nocapture
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::Engine;
use axum::extract::State;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vaka_device::events;

const DEVICES: usize = 1000;
const RATE: u64 = 100;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[derive(Default)]
struct Gateway {
    /// device id -> when its SMS request arrived (µs).
    at: Mutex<HashMap<String, i64>>,
}

async fn sms(
    State(g): State<Arc<Gateway>>,
    axum::Form(f): axum::Form<HashMap<String, String>>,
) -> &'static str {
    let t = now_us();
    let m = &f["message"];
    // "... från dev123 ..." (the default template)
    if let Some(d) = m.split_whitespace().find(|w| w.starts_with("dev")) {
        g.at.lock().unwrap().insert(d.to_owned(), t);
    }
    "OK"
}

fn percentiles(name: &str, mut v: Vec<i64>) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0;
    println!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        p(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn device_to_sms_and_email_latency_at_100_alarms_per_second() {
    let smtp_port = binary::free_tcp_port();
    let maildir = tempfile::tempdir().unwrap();
    let mut smtp = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{smtp_port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path().join("mail"))
        .stdout(Stdio::null())
        .spawn()
        .expect("aiosmtpd");
    while std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let gw = Arc::new(Gateway::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sms_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/sms", axum::routing::post(sms).get(|| async { "gw" }))
        .with_state(gw.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let ids: Vec<String> = (0..DEVICES).map(|i| format!("dev{i}")).collect();
    let mut directory = String::from(
        "[[tenants]]\nid = \"t\"\ncentres = [\"rel\"]\n\
         receipt_deadline_secs = 3600\naccept_deadline_secs = 3600\n\
         [[centres]]\nid = \"rel\"\ntenants = [\"t\"]\n\
         receiver = { kind = \"responder\", members = [{ name = \"Anna\", phone = \"+46701234567\", email = \"anna@example.org\" }] }\n",
    );
    directory.push_str(&format!(
        "[[devices]]\ntenant = \"t\"\nid = \"gw\"\ntype = \"0003\"\ngateway_for = {:?}\n",
        ids
    ));
    for id in &ids {
        directory.push_str(&format!(
            "[[devices]]\ntenant = \"t\"\nid = \"{id}\"\ntype = \"0051\"\n"
        ));
    }
    let sections = format!(
        "[receivers]\npublic_base_url = \"http://127.0.0.1:{{http}}\"\nprobe_secs = 1\n\
         [receivers.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nstarttls = false\n\
         from = \"Vaka <larm@vaka.test>\"\n\
         [receivers.sms]\nurl = \"http://127.0.0.1:{sms_port}/sms\"\n"
    );
    let engine = Engine::start_with(&directory, &[("t", &["gw"])], &sections);
    let end = Instant::now() + Duration::from_secs(20);
    while !binary::get_metrics(engine.http)
        .is_some_and(|m| m.contains("vaka_receiver_up{receiver=\"rel\",kind=\"responder\"} 1"))
    {
        assert!(Instant::now() < end, "receiver not up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Arc::new(engine.quic_client("t", "gw").await);
    let sent: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for id in &ids {
        tick.tick().await;
        let (client, sent, id) = (client.clone(), sent.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let t = now_us();
            let ev = events::for_device(events::alarm(format!("a-{id}"), "0010", 1), &id);
            let r = client.send(ev).await.unwrap();
            assert_eq!(r.status(), vaka_device::pb::Status::Ok, "{r:?}");
            sent.lock().unwrap().insert(id, t);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "sent {DEVICES} alarms in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Wait for every SMS and e-mail.
    let new = maildir.path().join("mail/new");
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let mails = std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0);
        let smses = gw.at.lock().unwrap().len();
        if mails >= DEVICES && smses >= DEVICES {
            break;
        }
        assert!(
            Instant::now() < end,
            "only {mails} e-mails and {smses} SMS of {DEVICES}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = sent.lock().unwrap().clone();
    let sms_lat: Vec<i64> = gw
        .at
        .lock()
        .unwrap()
        .iter()
        .map(|(d, t)| t - sent[d])
        .collect();
    let mut mail_lat = Vec::new();
    for e in std::fs::read_dir(&new).unwrap() {
        let e = e.unwrap();
        let at = e
            .metadata()
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        let text = std::fs::read_to_string(e.path())
            .unwrap()
            .replace("=\r\n", "")
            .replace("=\n", "");
        let d = text
            .split_whitespace()
            .find(|w| w.starts_with("dev") && sent.contains_key(*w))
            .expect("the device in the e-mail");
        mail_lat.push(at - sent[d]);
    }
    percentiles("device -> SMS request at the gateway", sms_lat);
    percentiles("device -> e-mail accepted by the SMTP server", mail_lat);
    let _ = smtp.kill();
    let _ = smtp.wait();
}
