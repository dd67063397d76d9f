//! A webhook receiver end to end (`vaka serve`, a local HTTP server in the test as the far
//! side): the alarm is POSTed as JSON with a valid HMAC-SHA256 signature and an idempotency key;
//! answered 500 twice, it is retried and arrives once (the same key, the same body); the 2xx is
//! the receipt in the alarm's audit. A webhook that never answers 2xx is passed over: the alarm
//! goes to the next centre of the chain, and the failures are counted.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaka_device::events;

const SECRET: &str = "the-webhook-secret-of-the-tests";

/// One request the webhook server got.
#[derive(Clone, Debug)]
struct Got {
    signature: String,
    key: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct Hook {
    got: Mutex<Vec<Got>>,
    /// Answers per idempotency key so far.
    seen: Mutex<HashMap<String, u32>>,
    /// Answer 500 to this many first tries of each offer (`None`: always 500).
    fail_first: Option<u32>,
    /// Take this long over every offer (a slow webhook).
    delay: Duration,
}

async fn hook(
    State(h): State<Arc<Hook>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let got = Got {
        signature: header("x-vaka-signature"),
        key: header("idempotency-key"),
        body: body.to_vec(),
    };
    let ping = got.key == "ping";
    let n = {
        let mut seen = h.seen.lock().unwrap();
        let n = seen.entry(got.key.clone()).or_default();
        *n += 1;
        *n
    };
    h.got.lock().unwrap().push(got);
    if ping {
        return StatusCode::NO_CONTENT;
    }
    tokio::time::sleep(h.delay).await;
    match h.fail_first {
        Some(k) if n > k => StatusCode::OK,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Serves `h` on a free loopback port; returns its URL.
async fn serve(h: Arc<Hook>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(h);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn directory(url: &str) -> String {
    format!(
        "[[tenants]]\nid = \"t\"\ncentres = [\"hook\", \"c1\"]\n\
         receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"hook\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"webhook\", url = \"{url}\", secret = \"{SECRET}\" }}\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"d0\"\ntype = \"0003\"\n"
    )
}

fn alarm_detail(engine: &Engine, id: u64) -> serde_json::Value {
    let r = engine.get(&format!("/api/v1/alarms/{id}"), OPERATOR);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn audit_actions(detail: &serde_json::Value) -> Vec<(String, String)> {
    detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until `f` holds (or panics after `within`).
async fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_alarm_arrives_once_after_two_500s_and_its_2xx_is_the_receipt() {
    let h = Arc::new(Hook {
        fail_first: Some(2),
        ..Default::default()
    });
    let url = serve(h.clone()).await;
    let engine = Engine::start(&directory(&url), &[("t", &["d0"])]);
    // The receiver probes its webhook before it counts as reachable.
    until(Duration::from_secs(10), "the webhook's ping", || {
        h.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let d0 = engine.quic_client("t", "d0").await;
    let reply = d0.send(events::alarm("a1", "0010", 1)).await.unwrap();
    // The webhook is reachable: the device is told its alarm is taken care of (not snu 5).
    assert_eq!(reply.status(), vaka_device::pb::Status::Ok, "{reply:?}");
    let id = reply.alarm_id.unwrap();
    let key = format!("{id}-");

    until(Duration::from_secs(15), "the receipt", || {
        audit_actions(&alarm_detail(&engine, id))
            .contains(&("centre:hook".into(), "receipt".into()))
    })
    .await;
    let detail = alarm_detail(&engine, id);
    assert_eq!(detail["alarm"]["state"], "receipted", "{detail}");

    // Three tries (500, 500, 200) of one notice, each signed, all the same body and key.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let offers: Vec<Got> = h
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|g| g.key.starts_with(&key))
        .cloned()
        .collect();
    assert_eq!(offers.len(), 3, "{offers:?}");
    for g in &offers {
        assert_eq!(g.key, offers[0].key);
        assert_eq!(g.body, offers[0].body);
        let want = vaka_receivers::sign::signature(SECRET.as_bytes(), &g.body);
        assert_eq!(g.signature, want, "the signature verifies");
        assert!(
            g.signature != vaka_receivers::sign::signature(b"another secret!!", &g.body),
            "a signature under another secret differs"
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&offers[0].body).unwrap();
    assert_eq!(body["type"], "offer");
    assert_eq!(body["alarm"]["id"], id);
    assert_eq!(body["alarm"]["device"], "d0");
    assert_eq!(body["alarm"]["tenant"], "t");
    // Once: after the 2xx the offer is not sent again.
    let answered = h.seen.lock().unwrap()[&offers[0].key];
    assert_eq!(answered, 3);

    // Not escalated: the receipt came in time, the alarm centre got nothing.
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    c1.no_offer_for(Duration::from_secs(1)).await;

    // The webhook's side accepts and closes through the admin API with its centre token.
    let hook_token = engine
        .send_ok(
            "POST",
            "/api/v1/tokens",
            OPERATOR,
            &serde_json::json!({"role": "centre", "centre": "hook", "label": "webhook"}),
        )
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let action = |token: &str, body: serde_json::Value| {
        engine.send(
            "POST",
            &format!("/api/v1/alarms/{id}/actions"),
            token,
            &body,
        )
    };
    // A gRPC centre's token does not act through the API; a bad body is named by its field.
    let c1_token = engine
        .send_ok(
            "POST",
            "/api/v1/tokens",
            OPERATOR,
            &serde_json::json!({"role": "centre", "centre": "c1", "label": "c1"}),
        )
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = action(
        &c1_token,
        serde_json::json!({"action": "accept", "operator": "x"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = action(&hook_token, serde_json::json!({"action": "accept"}));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("operator"), "{}", r.body);
    let r = action(
        &hook_token,
        serde_json::json!({"action": "accept", "operator": "jour-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = action(
        &hook_token,
        serde_json::json!({"action": "close", "outcome": "visited", "note": "all well"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let detail = alarm_detail(&engine, id);
    assert_eq!(detail["alarm"]["state"], "closed", "{detail}");
    let trail = audit_actions(&detail);
    assert!(
        trail.contains(&("operator:jour-1".into(), "accepted".into())),
        "{trail:?}"
    );
    assert!(
        trail.contains(&("centre:hook".into(), "closed".into())),
        "{trail:?}"
    );
    let metrics = binary::get_metrics(engine.http).unwrap();
    assert!(
        metrics.contains("vaka_receiver_deliveries_total{receiver=\"hook\",kind=\"webhook\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_is_passed_over_and_counted() {
    // Pings answer, offers never do.
    let h = Arc::new(Hook {
        fail_first: None,
        ..Default::default()
    });
    let url = serve(h.clone()).await;
    let engine = Engine::start(&directory(&url), &[("t", &["d0"])]);
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    until(Duration::from_secs(10), "the webhook's ping", || {
        h.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let d0 = engine.quic_client("t", "d0").await;
    let reply = d0.send(events::alarm("a1", "0010", 1)).await.unwrap();
    let id = reply.alarm_id.unwrap();
    // attempts (4) with backoff 250, 500, 1000 ms, then refused: on to the alarm centre.
    let offer = c1.offer(Duration::from_secs(15)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, id);
    let detail = alarm_detail(&engine, id);
    let audit = detail["audit"].to_string();
    assert!(audit.contains("refused by hook"), "{audit}");
    let metrics = binary::get_metrics(engine.http).unwrap();
    assert!(
        metrics.contains("vaka_receiver_failures_total{receiver=\"hook\",kind=\"webhook\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_holds_up_neither_another_receiver_nor_the_centre_stream() {
    // "slow" takes 20 s over every offer (the engine's request timeout is 5 s, 4 attempts);
    // "fast" answers at once.
    let slow = Arc::new(Hook {
        fail_first: Some(0),
        delay: Duration::from_secs(20),
        ..Default::default()
    });
    let fast = Arc::new(Hook {
        fail_first: Some(0),
        ..Default::default()
    });
    let (slow_url, fast_url) = (serve(slow.clone()).await, serve(fast.clone()).await);
    let directory = format!(
        "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"slow\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"webhook\", url = \"{slow_url}\", secret = \"{SECRET}\" }}\n\
         [[centres]]\nid = \"fast\"\ntenants = [\"t\"]\n\
         receiver = {{ kind = \"webhook\", url = \"{fast_url}\", secret = \"{SECRET}\" }}\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"d0\"\ntype = \"0003\"\ncentres = [\"slow\", \"c1\"]\n\
         [[devices]]\ntenant = \"t\"\nid = \"d1\"\ntype = \"0003\"\ncentres = [\"fast\", \"c1\"]\n\
         [[devices]]\ntenant = \"t\"\nid = \"d2\"\ntype = \"0003\"\n"
    );
    let engine = Engine::start(&directory, &[("t", &["d0", "d1", "d2"])]);
    until(Duration::from_secs(10), "both webhooks' pings", || {
        slow.seen.lock().unwrap().contains_key("ping")
            && fast.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    let (d0, d1, d2) = (
        engine.quic_client("t", "d0").await,
        engine.quic_client("t", "d1").await,
        engine.quic_client("t", "d2").await,
    );
    let held = d0
        .send(events::alarm("s1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    until(
        Duration::from_secs(5),
        "the slow webhook's first try",
        || slow.got.lock().unwrap().iter().any(|g| g.key != "ping"),
    )
    .await;
    let started = Instant::now();
    let quick = d1
        .send(events::alarm("f1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    let direct = d2
        .send(events::alarm("c1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    // The centre stream and the other webhook are served at once.
    let offer = c1.offer(Duration::from_secs(3)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, direct);
    until(Duration::from_secs(3), "the fast webhook's receipt", || {
        audit_actions(&alarm_detail(&engine, quick))
            .contains(&("centre:fast".into(), "receipt".into()))
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The slow one's alarm is still waiting on it (each try times out after 5 s).
    let slow_state = alarm_detail(&engine, held)["alarm"]["state"].clone();
    assert_eq!(slow_state, "offered", "{slow_state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_in_flight_when_the_engine_is_killed_is_sent_again_after_the_restart() {
    // Every offer takes 3 s to answer: the engine is SIGKILLed while the first is in flight.
    let h = Arc::new(Hook {
        fail_first: Some(0),
        delay: Duration::from_secs(3),
        ..Default::default()
    });
    let url = serve(h.clone()).await;
    let mut engine = Engine::start(&directory(&url), &[("t", &["d0"])]);
    until(Duration::from_secs(10), "the webhook's ping", || {
        h.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let d0 = engine.quic_client("t", "d0").await;
    let id = d0
        .send(events::alarm("k1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    drop(d0);
    let key = format!("{id}-");
    let offered = || {
        h.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.key.starts_with(&key))
            .map(|g| g.key.clone())
            .collect::<Vec<_>>()
    };
    until(Duration::from_secs(10), "the first try", || {
        !offered().is_empty()
    })
    .await;
    engine.sigkill();
    engine.restart();
    // The cursor did not move: the same notice (same idempotency key) comes again, and its
    // answer is the receipt.
    until(Duration::from_secs(20), "the offer again", || {
        offered().len() >= 2
    })
    .await;
    let keys = offered();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    until(Duration::from_secs(15), "the receipt", || {
        audit_actions(&alarm_detail(&engine, id))
            .contains(&("centre:hook".into(), "receipt".into()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_unreachable_and_no_centre_the_device_is_told_not_treated() {
    // Nothing listens at the webhook's address: it never comes up.
    let port = binary::free_tcp_port();
    let engine = Engine::start(
        &directory(&format!("http://127.0.0.1:{port}/hook")),
        &[("t", &["d0"])],
    );
    let d0 = engine.quic_client("t", "d0").await;
    let reply = d0.send(events::alarm("n1", "0010", 1)).await.unwrap();
    assert_eq!(
        reply.status(),
        vaka_device::pb::Status::NotTreated,
        "{reply:?}"
    );
    // Stored all the same, and offered the moment a centre connects (invariant 5).
    let id = reply.alarm_id.unwrap();
    let mut c1 = engine.centre("token-of-the-alarm-centre").await;
    let offer = c1.offer(Duration::from_secs(10)).await;
    assert_eq!(offer.alarm.unwrap().alarm_id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_hangs_does_not_hold_up_the_engines_shutdown() {
    // Offers hang far beyond the engine's shutdown bound (5 s in the tests' configuration).
    let h = Arc::new(Hook {
        fail_first: Some(0),
        delay: Duration::from_secs(120),
        ..Default::default()
    });
    let url = serve(h.clone()).await;
    let mut engine = Engine::start(&directory(&url), &[("t", &["d0"])]);
    until(Duration::from_secs(10), "the webhook's ping", || {
        h.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let d0 = engine.quic_client("t", "d0").await;
    d0.send(events::alarm("h1", "0010", 1)).await.unwrap();
    until(Duration::from_secs(10), "the hanging offer", || {
        h.got.lock().unwrap().iter().any(|g| g.key != "ping")
    })
    .await;
    drop(d0);
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || engine.sigterm(Duration::from_secs(15)))
        .await
        .unwrap();
    // Exit code 0: stopped within the engine's own bound (5 s), which a hanging delivery
    // would exceed; the time is checked loosely (a loaded machine adds the process's exit).
    assert_eq!(code, Some(0), "stopped cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// POSTs a webhook's callback to `/hooks/<receiver>`, signed with `secret`; (status, body).
fn callback(
    engine: &Engine,
    receiver: &str,
    secret: &str,
    body: &serde_json::Value,
) -> (u16, String) {
    let body = serde_json::to_vec(body).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!(
            "http://127.0.0.1:{}/hooks/{receiver}",
            engine.http
        ))
        .header("Content-Type", "application/json")
        .header(
            "X-Vaka-Signature",
            &vaka_receivers::sign::signature(secret.as_bytes(), &body),
        )
        .send(&body[..])
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_callback_accepts_and_closes_and_a_forged_stale_or_foreign_one_is_refused() {
    let h = Arc::new(Hook {
        fail_first: Some(0),
        ..Default::default()
    });
    let url = serve(h.clone()).await;
    let other = "[[tenants]]\nid = \"u\"\ncentres = [\"cu\"]\n\
                 [[centres]]\nid = \"cu\"\ntenants = [\"u\"]\ntoken = \"token-of-centre-of-u\"\n\
                 [[devices]]\ntenant = \"u\"\nid = \"e0\"\ntype = \"0003\"\n";
    let engine = Engine::start(
        &format!("{}{other}", directory(&url)),
        &[("t", &["d0"]), ("u", &["e0"])],
    );
    until(Duration::from_secs(10), "the webhook's ping", || {
        h.seen.lock().unwrap().contains_key("ping")
    })
    .await;
    let d0 = engine.quic_client("t", "d0").await;
    let id = d0
        .send(events::alarm("cb1", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();
    until(Duration::from_secs(15), "the receipt", || {
        audit_actions(&alarm_detail(&engine, id))
            .contains(&("centre:hook".into(), "receipt".into()))
    })
    .await;
    // Tenant u's alarm, never offered to t's webhook.
    let e0 = engine.quic_client("u", "e0").await;
    let foreign = e0
        .send(events::alarm("cb2", "0010", 1))
        .await
        .unwrap()
        .alarm_id
        .unwrap();

    let accept = |alarm: u64, at: i64| serde_json::json!({"alarm": alarm, "timestamp": at, "action": "accept", "operator": "Anna"});
    // Forged (another secret), an unknown receiver, a gRPC centre as receiver: the same 401.
    let (s, b) = callback(
        &engine,
        "hook",
        "not-the-secret-of-hook",
        &accept(id, unix_now()),
    );
    assert_eq!(s, 401, "{b}");
    let (s, b) = callback(&engine, "nobody", SECRET, &accept(id, unix_now()));
    assert_eq!(s, 401, "{b}");
    let (s, b) = callback(&engine, "c1", SECRET, &accept(id, unix_now()));
    assert_eq!(s, 401, "{b}");
    // Signed but stale (a replay ten minutes later) or from the future.
    let (s, b) = callback(&engine, "hook", SECRET, &accept(id, unix_now() - 600));
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("timestamp"), "{b}");
    let (s, b) = callback(&engine, "hook", SECRET, &accept(id, unix_now() + 600));
    assert_eq!(s, 401, "{b}");
    // Signed, fresh, but another tenant's alarm; a bad field named.
    let (s, b) = callback(&engine, "hook", SECRET, &accept(foreign, unix_now()));
    assert_eq!(s, 404, "{b}");
    let (s, b) = callback(
        &engine,
        "hook",
        SECRET,
        &serde_json::json!({"alarm": id, "timestamp": unix_now(), "action": "accept"}),
    );
    assert_eq!(s, 422, "{b}");
    assert!(b.contains("operator"), "{b}");
    let foreign_detail = alarm_detail(&engine, foreign);
    assert!(
        !audit_actions(&foreign_detail)
            .iter()
            .any(|(who, _)| who.contains("hook") || who.contains("Anna")),
        "{foreign_detail}"
    );
    assert_eq!(
        alarm_detail(&engine, id)["alarm"]["state"],
        "receipted",
        "nothing refused changed the alarm"
    );

    // The real thing: accept, then close with an outcome and a note.
    let (s, b) = callback(&engine, "hook", SECRET, &accept(id, unix_now()));
    assert_eq!(s, 200, "{b}");
    let (s, b) = callback(
        &engine,
        "hook",
        SECRET,
        &serde_json::json!({"alarm": id, "timestamp": unix_now(), "action": "close",
                            "outcome": "visited", "note": "all well"}),
    );
    assert_eq!(s, 200, "{b}");
    let detail = alarm_detail(&engine, id);
    assert_eq!(detail["alarm"]["state"], "closed", "{detail}");
    let trail = audit_actions(&detail);
    assert!(
        trail.contains(&("operator:Anna".into(), "accepted".into())),
        "{trail:?}"
    );
    assert!(
        trail.contains(&("centre:hook".into(), "closed".into())),
        "{trail:?}"
    );
    // A closed alarm takes no more answers.
    let (s, b) = callback(&engine, "hook", SECRET, &accept(id, unix_now()));
    assert_eq!(s, 409, "{b}");
    let metrics = binary::get_metrics(engine.http).unwrap();
    assert!(
        metrics
            .contains("vaka_receiver_callbacks_total{receiver=\"hook\",result=\"unauthorised\"} 3"),
        "{metrics}"
    );
}
