//! Receivers that are people, end to end (`vaka serve` with real parts on loopback): a GPS
//! tracker's geofence exit goes to a relative (a responder receiver reached by e-mail through a
//! real SMTP server, `python3 -m aiosmtpd`, and by SMS through an HTTP gateway played by the
//! test), then the home-care team, then the alarm centre (gRPC).
//! - The relative opens the link from the captured e-mail in headless Chromium (a phone-sized
//!   window), sees the alarm and its position, presses Accept: the audit shows receipt and
//!   accept by that person, and nothing escalates. A screenshot is saved.
//! - The relative does nothing: after the deadline the team is told, then the gRPC centre.
//! - A tampered or made-up link is refused, too many tries from one source are refused, and
//!   another tenant's receiver hears nothing of the alarm.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use axum::extract::State;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vaka_device::events;

/// Home: the tracker's fence, a 100 m circle.
const HOME: (f64, f64) = (59.3293, 18.0686);

/// A real SMTP server (aiosmtpd) writing every message into a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        Smtp::start_with(&[])
    }

    /// One that requires STARTTLS (before MAIL) with this certificate and key.
    fn start_tls(cert: &Path, key: &Path) -> Smtp {
        Smtp::start_with(&[
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ])
    }

    fn start_with(extra: &[&std::ffi::OsStr]) -> Smtp {
        let port = binary::free_tcp_port();
        let maildir = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/install-deps.sh installs it)");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    /// Every message received so far, as raw text.
    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail/new");
        let mut out: Vec<(SystemTime, String)> = std::fs::read_dir(&new)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        let m = e.metadata().unwrap().modified().unwrap();
                        (m, std::fs::read_to_string(e.path()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// Messages to `addr`.
    fn to(&self, addr: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(addr)))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quoted-printable body of a message, decoded.
fn qp_decode(m: &str) -> String {
    let joined = m.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The responder link in a text.
fn link_in(text: &str) -> String {
    let at = text.find("http://").expect("a link");
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ":/._-".contains(*c))
        .collect()
}

/// The SMS gateway: records every form POST.
#[derive(Default)]
struct Gateway {
    sent: Mutex<Vec<HashMap<String, String>>>,
}

/// Takes the form style and the JSON style alike; records the fields and which style it was.
async fn gateway_post(
    State(g): State<Arc<Gateway>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> &'static str {
    let kind = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut f: HashMap<String, String> = if kind.starts_with("application/json") {
        serde_json::from_slice(&body).unwrap()
    } else {
        url_form(&body)
    };
    f.insert("content-type".into(), kind);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    f.insert("authorization".into(), auth.to_owned());
    g.sent.lock().unwrap().push(f);
    "OK"
}

/// `a=b&c=d` (percent- and plus-decoded).
fn url_form(body: &[u8]) -> HashMap<String, String> {
    let dec = |s: &str| {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect()
}

async fn serve_gateway(g: Arc<Gateway>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/sms",
            axum::routing::post(gateway_post).get(|| async { "gateway" }),
        )
        .with_state(g);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn sections(smtp: u16, sms: u16, opens_per_min: u32) -> String {
    sections_styled(smtp, sms, opens_per_min, "form")
}

fn sections_styled(smtp: u16, sms: u16, opens_per_min: u32, style: &str) -> String {
    format!(
        "[receivers]\npublic_base_url = \"http://127.0.0.1:{{http}}\"\nprobe_secs = 1\n\
         link_opens_per_min = {opens_per_min}\n\
         [receivers.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nstarttls = false\n\
         from = \"Vaka <larm@vaka.test>\"\n\
         [receivers.sms]\nurl = \"http://127.0.0.1:{sms}/sms\"\nstyle = \"{style}\"\n\
         username = \"vaka\"\npassword = \"gateway-password\"\n"
    )
}

/// Tenant t: the tracker's geofence exits go to the relative, then the team, then the centre.
/// Tenant u has a relative of its own.
fn directory(receipt_secs: u32, accept_secs: u32) -> String {
    format!(
        "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = {receipt_secs}\naccept_deadline_secs = {accept_secs}\n\
         [[tenants]]\nid = \"u\"\ncentres = [\"u-relative\"]\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
         [[centres]]\nid = \"relative\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"responder\", members = [{{ name = \"Anna\", phone = \"+46701234567\", email = \"anna@example.org\" }}, \
         {{ name = \"Bertil\", email = \"bertil@example.org\" }}] }}\n\
         [[centres]]\nid = \"team\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"email\", to = [\"team@hemtjanst.example.org\"] }}\n\
         [[centres]]\nid = \"u-relative\"\ntenants = [\"u\"]\n\
         receiver = {{ kind = \"email\", to = [\"someone@other.example.org\"] }}\n\
         [[devices]]\ntenant = \"t\"\nid = \"tracker\"\ntype = \"0051\"\n\
         chains_by_kind = {{ geofence = [\"relative\", \"team\", \"c1\"] }}\n\
         [[devices.fences]]\nid = \"home\"\nkind = \"circle\"\nlat = {}\nlon = {}\n\
         radius_m = 100\nmargin_m = 10\nconfirm_fixes = 2\n",
        HOME.0, HOME.1
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `north_m` metres north of home.
fn north(north_m: f64) -> (f64, f64) {
    (HOME.0 + north_m / 111_320.0, HOME.1)
}

/// The tracker walks out of its fence; the geofence alarm's id.
async fn walk_out(engine: &Engine) -> u64 {
    let tracker = engine.quic_client("t", "tracker").await;
    let t0 = now_ms() - 40_000;
    for (i, m) in [0.0, 20.0, 150.0, 170.0, 190.0].into_iter().enumerate() {
        let (lat, lon) = north(m);
        let t = t0 + i as i64 * 10_000;
        let r = tracker
            .send(events::position(format!("p{i}"), t, lat, lon, Some(12.0)))
            .await
            .unwrap();
        assert_eq!(r.status(), vaka_device::pb::Status::Ok, "{r:?}");
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = engine.get("/api/v1/tenants/t/alarms", OPERATOR);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let found = v["alarms"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["kind"] == "geofence_exit").cloned());
        if let Some(a) = found {
            return a["id"].as_u64().unwrap();
        }
        assert!(Instant::now() < end, "no geofence alarm: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until every receiver of the engine is up (its relay or gateway answered).
async fn receivers_up(engine: &Engine, ids: &[&str]) {
    until(Duration::from_secs(15), "the receivers up", || {
        let m = binary::get_metrics(engine.http)?;
        ids.iter()
            .all(|id| {
                m.lines().any(|l| {
                    l.starts_with("vaka_receiver_up{")
                        && l.contains(&format!("receiver=\"{id}\""))
                        && l.ends_with(" 1")
                })
            })
            .then_some(())
    })
    .await
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("responder-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn browser(url: &str, shot: &Path, accept: bool) -> Value {
    let script = format!(
        "{}/tests/python/responder_browser.py",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg("--url")
        .arg(url)
        .arg("--screenshot")
        .arg(shot);
    if accept {
        cmd.arg("--accept");
    }
    let out = cmd.output().expect("python3");
    assert!(
        out.status.success(),
        "responder_browser.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relative_opens_the_link_accepts_and_nothing_escalates() {
    let smtp = Smtp::start();
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let engine = Engine::start_with(
        &directory(60, 60),
        &[("t", &["tracker"])],
        &sections(smtp.port, sms, 30),
    );
    receivers_up(&engine, &["relative", "team", "u-relative"]).await;
    let id = walk_out(&engine).await;

    // The relative's e-mail, captured by the SMTP server, and SMS, by the gateway.
    let mail = until(Duration::from_secs(15), "the relative's e-mail", || {
        smtp.to("anna@example.org").pop()
    })
    .await;
    let body = qp_decode(&mail);
    let link = link_in(&body);
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{}/r/", engine.http)),
        "{body}"
    );
    assert!(body.contains("Lämnat område"), "{body}");
    let sent = until(Duration::from_secs(10), "the relative's SMS", || {
        gw.sent.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(sent["to"], "+46701234567");
    assert!(sent["message"].contains(&link), "{sent:?}");
    assert!(sent["message"].contains("Lämnat område"), "{sent:?}");
    assert!(
        sent["content-type"].starts_with("application/x-www-form-urlencoded"),
        "{sent:?}"
    );
    // HTTP basic with the configured credentials.
    assert_eq!(
        sent["authorization"], "Basic dmFrYTpnYXRld2F5LXBhc3N3b3Jk",
        "{sent:?}"
    );

    let shot = screenshots().join("responder-accept.png");
    let page = browser(&link, &shot, true);
    println!("responder page screenshot: {}", shot.display());
    let before = &page["before"];
    assert!(
        before["what"].as_str().unwrap().contains("Lämnat område"),
        "{page}"
    );
    assert!(
        before["who"].as_str().unwrap().contains("tracker"),
        "{page}"
    );
    let pos = before["position"].as_str().unwrap();
    assert!(pos.contains("59.33") && pos.contains("±12 m"), "{page}");
    assert!(
        before["map"]
            .as_str()
            .unwrap()
            .starts_with("https://www.openstreetmap.org/"),
        "{page}"
    );
    assert_eq!(before["accept_button"], true, "{page}");
    assert!(
        before["battery"].as_str().unwrap().contains("batteri"),
        "{page}"
    );
    // Heard through its fixes: a time, not "unknown".
    assert!(
        !before["heard"].as_str().unwrap().contains("Okänt"),
        "{page}"
    );
    assert_eq!(page["after"]["accepted_by"], "Anna", "{page}");
    assert_eq!(page["after"]["close_button"], true, "{page}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);

    let trail = engine.alarm_trail(id);
    let did = |actor: &str, action: &str| trail.iter().any(|(a, b, _)| a == actor && b == action);
    assert!(did("operator:Anna", "receipt"), "{trail:?}");
    assert!(did("operator:Anna", "accepted"), "{trail:?}");
    // Nothing escalates: the team hears nothing, the centre gets nothing, another tenant's
    // receiver never hears of it.
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    c1.no_offer_for(Duration::from_secs(2)).await;
    assert!(smtp.to("team@hemtjanst.example.org").is_empty());
    assert!(smtp.to("someone@other.example.org").is_empty());
    assert!(
        !trail.iter().any(|(_, a, _)| a.contains("escalat")),
        "{trail:?}"
    );
    let r = engine.get(&format!("/api/v1/alarms/{id}"), OPERATOR).json();
    assert_eq!(r["alarm"]["state"], "accepted", "{r}");

    // Bertil, of the same receiver, opens his own link afterwards: he sees that Anna took it,
    // and has nothing to press.
    let mail = until(Duration::from_secs(10), "Bertil's e-mail", || {
        smtp.to("bertil@example.org").pop()
    })
    .await;
    let his = link_in(&qp_decode(&mail));
    assert_ne!(his, link, "each member has a link of their own");
    let path = his
        .split_once(&format!(":{}", engine.http))
        .unwrap()
        .1
        .to_owned();
    let page = engine.get(&path, "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=accepted-by>Anna<"), "{}", page.body);
    assert!(!page.body.contains("id=accept>"), "{}", page.body);
    assert!(page.body.contains("Bertil"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_the_team_then_the_centre_get_it() {
    let smtp = Smtp::start();
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let engine = Engine::start_with(
        &directory(2, 2),
        &[("t", &["tracker"])],
        &sections_styled(smtp.port, sms, 30, "json"),
    );
    receivers_up(&engine, &["relative", "team"]).await;
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    let id = walk_out(&engine).await;
    until(Duration::from_secs(10), "the relative's e-mail", || {
        smtp.to("anna@example.org").pop()
    })
    .await;
    // The SMS went in the gateway's JSON style.
    let sent = until(Duration::from_secs(10), "the relative's SMS", || {
        gw.sent.lock().unwrap().first().cloned()
    })
    .await;
    assert!(
        sent["content-type"].starts_with("application/json"),
        "{sent:?}"
    );
    assert_eq!(sent["to"], "+46701234567");
    assert!(sent["message"].contains("/r/"), "{sent:?}");
    // The relative does nothing: past the receipt deadline the team is told ...
    let team = until(Duration::from_secs(10), "the team's e-mail", || {
        smtp.to("team@hemtjanst.example.org").pop()
    })
    .await;
    assert!(qp_decode(&team).contains("/r/"), "{team}");
    // ... and nobody of the team either: the alarm centre gets it.
    let offer = c1.offer(Duration::from_secs(10)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, id);
    let trail = engine.alarm_trail(id);
    let offered: Vec<&str> = trail
        .iter()
        .filter(|(_, a, _)| a == "offered")
        .map(|(_, _, r)| r.as_str())
        .collect();
    assert!(
        trail
            .iter()
            .filter(|(_, a, _)| a.contains("escalat"))
            .count()
            >= 2,
        "{trail:?} {offered:?}"
    );
    assert!(smtp.to("someone@other.example.org").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_made_up_links_are_refused_and_sources_are_limited() {
    let smtp = Smtp::start();
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let engine = Engine::start_with(
        &directory(60, 60),
        &[("t", &["tracker"])],
        &sections(smtp.port, sms, 8),
    );
    receivers_up(&engine, &["relative"]).await;
    let id = walk_out(&engine).await;
    let mail = until(Duration::from_secs(15), "the relative's e-mail", || {
        smtp.to("anna@example.org").pop()
    })
    .await;
    let link = link_in(&qp_decode(&mail));
    let path = link
        .split_once(&format!(":{}", engine.http))
        .unwrap()
        .1
        .to_owned();
    // One changed character of the token.
    let mut tampered = path.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(engine.get(&tampered, "").status, 403);
    assert_eq!(engine.get("/r/not-a-token", "").status, 403);
    assert_eq!(
        engine
            .get("/r/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
            .status,
        403
    );
    // A refused link does nothing to the alarm.
    assert!(!engine
        .alarm_trail(id)
        .iter()
        .any(|(a, _, _)| a == "operator:Anna"));
    // The real link opens (the receipt) ...
    let r = engine.get(&path, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Anna"));
    // ... and a POST with a tampered token accepts nothing.
    let r = engine.send("POST", &format!("{tampered}/accept"), "", &Value::Null);
    assert_eq!(r.status, 403, "{}", r.body);
    // 8 requests a minute from one source: the next ones are refused, even with the real link.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(engine.get(&path, "").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let trail = engine.alarm_trail(id);
    assert!(
        trail
            .iter()
            .any(|(a, b, _)| a == "operator:Anna" && b == "receipt"),
        "{trail:?}"
    );
    assert!(!trail.iter().any(|(_, b, _)| b == "accepted"), "{trail:?}");
    assert!(smtp.to("someone@other.example.org").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mail_goes_through_a_relay_that_requires_starttls() {
    // The demo PKI: a server certificate for 127.0.0.1 from its own CA, which the engine is
    // told to trust (`ca_file`); the relay refuses MAIL before STARTTLS.
    let pki = tempfile::tempdir().unwrap();
    vaka_ingest::certs::generate_demo(pki.path(), "t", &[]).unwrap();
    let smtp = Smtp::start_tls(
        &pki.path().join("server.pem"),
        &pki.path().join("server-key.pem"),
    );
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let sections = format!(
        "[receivers]\npublic_base_url = \"http://127.0.0.1:{{http}}\"\nprobe_secs = 1\n\
         [receivers.smtp]\nhost = \"127.0.0.1\"\nport = {}\nstarttls = true\n\
         ca_file = \"{}\"\nfrom = \"Vaka <larm@vaka.test>\"\n\
         [receivers.sms]\nurl = \"http://127.0.0.1:{sms}/sms\"\n",
        smtp.port,
        pki.path().join("server-ca.pem").display()
    );
    let engine = Engine::start_with(&directory(60, 60), &[("t", &["tracker"])], &sections);
    receivers_up(&engine, &["relative", "team"]).await;
    walk_out(&engine).await;
    let mail = until(
        Duration::from_secs(15),
        "the relative's e-mail over STARTTLS",
        || smtp.to("anna@example.org").pop(),
    )
    .await;
    assert!(link_in(&qp_decode(&mail)).contains("/r/"), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_shows_nothing_once_its_receiver_no_longer_serves_the_tenant() {
    let smtp = Smtp::start();
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let engine = Engine::start_with(
        &directory(60, 60),
        &[("t", &["tracker"])],
        &sections(smtp.port, sms, 30),
    );
    receivers_up(&engine, &["relative"]).await;
    walk_out(&engine).await;
    let mail = until(Duration::from_secs(15), "the relative's e-mail", || {
        smtp.to("anna@example.org").pop()
    })
    .await;
    let link = link_in(&qp_decode(&mail));
    let path = link
        .split_once(&format!(":{}", engine.http))
        .unwrap()
        .1
        .to_owned();
    assert_eq!(engine.get(&path, "").status, 200);
    // The relative's receiver is moved to tenant u: the same, validly signed link now shows
    // nothing of tenant t's alarm (the centre scope decides, as for a gRPC centre).
    let mut rec = engine.get("/api/v1/centres/relative", OPERATOR).json();
    rec["tenants"] = serde_json::json!(["u"]);
    let r = engine.send("PUT", "/api/v1/centres/relative", OPERATOR, &rec);
    assert!(r.status == 200 || r.status == 201, "{}", r.body);
    let r = engine.get(&path, "");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains("tracker"), "{}", r.body);
}

/// The responder links' key of a stopped engine, read from its store.
fn link_key_of(engine: &Engine) -> Vec<u8> {
    use vaka_store::{GroupConfig, RecoverOptions, RocksBackend, RocksConfig, Store};
    let data = engine.dir.path().join("data/db");
    let backend = Arc::new(RocksBackend::open(&RocksConfig::new(data)).unwrap());
    let (store, _) = Store::open(
        backend,
        GroupConfig::default(),
        RecoverOptions {
            now_ms: now_ms(),
            idem_window_ms: i64::MAX,
        },
    )
    .unwrap();
    store.receiver_link_key().unwrap().expect("a link key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_a_link_signed_with_the_engines_key_is_refused_expired_or_for_an_alarm_not_offered() {
    let smtp = Smtp::start();
    let gw = Arc::new(Gateway::default());
    let sms = serve_gateway(gw.clone()).await;
    let mut engine = Engine::start_with(
        &directory(60, 60),
        &[("t", &["tracker"])],
        &sections(smtp.port, sms, 100),
    );
    receivers_up(&engine, &["relative"]).await;
    let offered = walk_out(&engine).await;
    // A fall alarm of the same device goes to the alarm centre only (its default chain).
    let tracker = engine.quic_client("t", "tracker").await;
    let not_offered = tracker
        .send(events::alarm("fall-1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    drop(tracker);
    assert_eq!(engine.sigterm(Duration::from_secs(15)), Some(0));
    let key = link_key_of(&engine);
    engine.restart();
    let now_s = (now_ms() / 1000) as u32;
    let open = |alarm: u64, member: u8, expires_s: u32| {
        let token = vaka_receivers::link::Link {
            alarm,
            receiver: "relative".into(),
            member,
            expires_s,
        }
        .token(&key);
        engine.get(&format!("/r/{token}"), "")
    };
    // Expired a second ago; for an alarm never offered to the relative; for a member the
    // receiver does not have; for an alarm that does not exist.
    let r = open(offered, 0, now_s - 1);
    assert_eq!(r.status, 410, "{}", r.body);
    let r = open(not_offered, 0, now_s + 600);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = open(offered, 7, now_s + 600);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = open(offered + 1000, 0, now_s + 600);
    assert_eq!(r.status, 404, "{}", r.body);
    // None of them was anyone's receipt; the right link still works after the restart.
    for id in [offered, not_offered] {
        assert!(
            !engine
                .alarm_trail(id)
                .iter()
                .any(|(a, _, _)| a.starts_with("operator:")),
            "{:?}",
            engine.alarm_trail(id)
        );
    }
    let r = open(offered, 0, now_s + 600);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(engine
        .alarm_trail(offered)
        .iter()
        .any(|(a, b, _)| a == "operator:Anna" && b == "receipt"));
}
