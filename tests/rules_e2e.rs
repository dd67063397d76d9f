//! Activity rules end to end (`vaka serve`, rules from the configuration): a medication robot
//! (a vaka/1 device) reports a missed dose; the rule's alarm reaches the nurses' receiver,
//! which the device routes that kind of alarm to, and not the alarm centre of its tenant; the
//! device's status lists the rule as fired, then armed again once the dose is taken. Reports
//! stamped with the device's time are judged at that time, whatever order they arrive in.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use std::time::Duration;
use vaka_device::events;

const DIRECTORY: &str = "[[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
    receipt_deadline_secs = 600\naccept_deadline_secs = 600\ntime_zone = \"Europe/Stockholm\"\n\
    [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"token-of-the-alarm-centre\"\n\
    [[centres]]\nid = \"nurses\"\ntenants = [\"t\"]\ntoken = \"token-of-the-nurses-team\"\n\
    [[devices]]\ntenant = \"t\"\nid = \"robot\"\ntype = \"0010\"\n\
    chains_by_kind = { missed_dose = [\"nurses\"] }\n\
    [[devices.rules]]\nid = \"dose\"\nkind = \"missed_dose\"\ndue = \"dose-due\"\n\
    taken = \"dose-taken\"\nmissed = \"dose-missed\"\nminutes = 30\n";

fn rule_state(engine: &Engine) -> String {
    let s = engine
        .get("/api/v1/tenants/t/devices/robot/status", OPERATOR)
        .json();
    assert_eq!(s["rules"][0]["id"], "dose", "{s}");
    assert_eq!(s["rules"][0]["kind"], "missed_dose", "{s}");
    s["rules"][0]["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_dose_reaches_the_nurses_not_the_alarm_centre() {
    let engine = Engine::start(DIRECTORY, &[("t", &["robot"])]);
    let mut centre = engine.centre("token-of-the-alarm-centre").await;
    let mut nurses = engine.centre("token-of-the-nurses-team").await;
    let robot = engine.quic_client("t", "robot").await;
    assert_eq!(rule_state(&engine), "armed");

    let due = robot
        .send(events::telemetry("d1", "dose-due", 1.0))
        .await
        .unwrap();
    assert_eq!(due.status(), vaka_device::pb::Status::Ok);
    assert_eq!(rule_state(&engine), "waiting");
    // The robot's own report: the dose was not taken.
    robot
        .send(events::telemetry("m1", "dose-missed", 1.0))
        .await
        .unwrap();
    let alarm = nurses.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (alarm.device.as_str(), alarm.code.as_str()),
        ("robot", "rule:missed_dose:dose")
    );
    assert_eq!(alarm.chain, ["nurses"]);
    assert!(
        alarm.text.as_deref().unwrap_or("").contains("missed dose"),
        "{alarm:?}"
    );
    centre.no_offer_for(Duration::from_secs(2)).await;
    assert_eq!(rule_state(&engine), "fired");

    robot
        .send(events::telemetry("t1", "dose-taken", 1.0))
        .await
        .unwrap();
    assert_eq!(rule_state(&engine), "armed");
    centre.no_offer_for(Duration::from_secs(1)).await;
}

/// The robot's reports carry the time they happened (`occurred_ms`): a "taken" that overtakes
/// its "due" on the way in leaves the rule armed, as it would have been in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_overtaken_on_the_way_is_judged_at_the_time_it_happened() {
    let engine = Engine::start(DIRECTORY, &[("t", &["robot"])]);
    let robot = engine.quic_client("t", "robot").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for ev in [
        events::occurred_at(events::telemetry("t1", "dose-taken", 1.0), now - 60_000),
        events::occurred_at(events::telemetry("d1", "dose-due", 1.0), now - 10 * 60_000),
    ] {
        let r = robot.send(ev).await.unwrap();
        assert_eq!(r.status(), vaka_device::pb::Status::Ok);
    }
    assert_eq!(rule_state(&engine), "armed", "due 10 min ago, taken since");
    // The same "due" without its time is taken as now: waiting for the dose.
    robot
        .send(events::telemetry("d2", "dose-due", 1.0))
        .await
        .unwrap();
    assert_eq!(rule_state(&engine), "waiting");
}
