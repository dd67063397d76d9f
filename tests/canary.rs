//! End-to-end canary alarms (`vaka serve`): the engine plays tenant t's canary device through its
//! own SCAIP front over UDP; the alarm reaches the centre marked as a test, the centre's machine
//! receipt brings the canary back (`vaka_canary_ok{tenant="t"} 1`), and the canary cancels it
//! (so the next run opens its own). With no centre to receipt it, the next run fails loudly
//! (`vaka_canary_ok 0`, a failed run counted) and no real alarm statistics are touched.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use std::time::{Duration, Instant};

const CENTRE_TOKEN: &str = "token-of-the-alarm-centre";

// The receipt deadline leaves a loaded CI machine room: a test alarm not receipted within it
// expires (closed), and CI once saw the centre's receipt come after 1 s and be refused.
const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    receipt_deadline_secs = 5\naccept_deadline_secs = 60\n\
    canary = { device = \"900001\", every_secs = 10 }\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"900001\"\ntype = \"0003\"\npassword = \"canary-secret\"\n";

/// A metric's value in /metrics (the line that starts with `series`), if present.
fn metric(engine: &Engine, series: &str) -> Option<f64> {
    let text = binary::get_metrics(engine.http)?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

fn wait_metric(engine: &Engine, series: &str, want: f64, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let got = metric(engine, series);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < until, "{series} is {got:?}, not {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_comes_back_through_the_whole_path_and_fails_loudly_when_it_cannot() {
    let engine = Engine::start(DIRECTORY, &[]);
    let mut centre = engine.centre(CENTRE_TOKEN).await;

    // The first run starts one period (10 s) after start-up: its alarm reaches the centre marked
    // as a test.
    let offer = centre.offer(Duration::from_secs(20)).await;
    let alarm = offer.alarm.unwrap();
    assert!(alarm.test, "{alarm:?}");
    assert_eq!(alarm.device, "900001");
    centre.receipt(alarm.alarm_id).await;
    wait_metric(
        &engine,
        "vaka_canary_ok{tenant=\"t\"}",
        1.0,
        Duration::from_secs(10),
    );
    let took = metric(&engine, "vaka_canary_seconds{tenant=\"t\"}").unwrap();
    assert!(took > 0.0 && took < 5.0, "{took}");
    // The canary cancelled its alarm (a SCAIP reset through the front): it ended, as a test.
    let until = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let a = engine
            .get(&format!("/api/v1/alarms/{}", alarm.alarm_id), OPERATOR)
            .json();
        if a["alarm"]["state"] == "cancelled" || Instant::now() > until {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored["alarm"]["state"], "cancelled", "{stored}");
    assert_eq!(stored["alarm"]["test"], true);
    assert!(
        stored["alarm"]["stages"]["receipted_ms"].is_i64(),
        "{stored}"
    );

    // The centre goes away: the next run (a period after the first) gets no receipt and fails.
    drop(centre);
    wait_metric(
        &engine,
        "vaka_canary_ok{tenant=\"t\"}",
        0.0,
        Duration::from_secs(25),
    );
    assert!(
        metric(
            &engine,
            "vaka_canary_runs_total{tenant=\"t\",result=\"failed\"}"
        )
        .unwrap()
            >= 1.0
    );
    // A canary is a test: no real alarm missed a deadline or went unhandled.
    assert_eq!(metric(&engine, "vaka_deadlines_missed_total"), Some(0.0));
    assert_eq!(metric(&engine, "vaka_alarms_unhandled_total"), Some(0.0));
    let stats = engine.get("/api/v1/tenants/t/statistics", OPERATOR).json();
    assert_eq!(stats["alarms"]["real"], 0, "{stats}");
    assert!(stats["alarms"]["test"].as_u64().unwrap() >= 2, "{stats}");
}
