//! Flood isolation, the October 2020 case (test alarms queued ahead of real ones delayed social
//! alarms by hours): a tenant on test floods the engine with test alarms while another tenant's
//! devices raise real ones. Real alarms' time to the centre (device send to the offer on the
//! centre's stream) is measured unloaded and under the flood: every real alarm is taken (never
//! busy) and offered, and its p99 stays within 2x of the unloaded one plus 100 ms. The flood is
//! 2,000 test alarms/s (the issue asks 9x the real rate; this is about 50x); the floor is for
//! this suite's conditions (a debug build, the flood's own QUIC clients on the same two cores).
//! `VAKA_FLOOD_UNPACED=1` floods as fast as the engine answers instead (10,000-27,000/s here):
//! every real alarm is still taken, but its p99 then grows to hundreds of ms (see
//! BENCHMARKS.md), so that run only prints its figures.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaka_device::{events, pb};

const FLOODERS: usize = 8;
const REAL_DEVICES: usize = 3;

fn directory() -> String {
    let mut d = String::from(
        "[[tenants]]\nid = \"real\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = 60\naccept_deadline_secs = 600\n\
         [[tenants]]\nid = \"lab\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = 60\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"real\", \"lab\"]\ntoken = \"token-of-the-centre\"\n",
    );
    for i in 0..REAL_DEVICES {
        d += &format!("[[devices]]\ntenant = \"real\"\nid = \"r{i}\"\ntype = \"0003\"\n");
    }
    for i in 0..FLOODERS {
        d += &format!("[[devices]]\ntenant = \"lab\"\nid = \"f{i}\"\ntype = \"0003\"\n");
    }
    d
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Sends `n` real alarms round robin over the real devices, one at a time, each closed by the
/// centre task once offered; returns each one's time from send to its offer on the stream.
async fn real_alarms(
    devices: &[vaka_device::Client],
    sent: &Arc<Mutex<HashMap<String, Instant>>>,
    offered: &Arc<Mutex<HashMap<String, Duration>>>,
    tag: &str,
    n: usize,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..n {
        let reference = format!("{tag}{i}");
        sent.lock()
            .unwrap()
            .insert(reference.clone(), Instant::now());
        let reply = devices[i % devices.len()]
            .send(events::alarm(reference.clone(), "0010", 5))
            .await
            .unwrap();
        assert_eq!(
            reply.status(),
            pb::Status::Ok,
            "a real alarm refused: {reply:?}"
        );
        let until = Instant::now() + Duration::from_secs(20);
        let took = loop {
            if let Some(d) = offered.lock().unwrap().remove(&reference) {
                break d;
            }
            assert!(Instant::now() < until, "{reference} never offered");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        out.push(took);
        // The centre closes it meanwhile: give it a moment so the device's next alarm is new.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alarms_keep_their_pace_under_a_flood_of_test_alarms() {
    let engine = Engine::start(
        &directory(),
        &[
            ("real", &["r0", "r1", "r2"]),
            ("lab", &["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"]),
        ],
    );
    // The whole "lab" tenant goes on test, as for an installation day.
    let until = 4_102_444_800_000i64; // 2100-01-01
    let mut tenant = engine.get("/api/v1/tenants/lab", admin::OPERATOR).json();
    tenant["test_until_ms"] = until.into();
    tenant.as_object_mut().unwrap().remove("revision");
    engine.send_ok("PUT", "/api/v1/tenants/lab", admin::OPERATOR, &tenant);

    let mut centre = engine.centre("token-of-the-centre").await.acking();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let offered: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let test_offers = Arc::new(AtomicU64::new(0));
    let centre_task = {
        let (sent, offered, test_offers) = (sent.clone(), offered.clone(), test_offers.clone());
        tokio::spawn(async move {
            loop {
                let o = centre.offer(Duration::from_secs(600)).await;
                let alarm = o.alarm.unwrap();
                if alarm.test {
                    test_offers.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(at) = sent.lock().unwrap().remove(&alarm.reference) {
                    offered
                        .lock()
                        .unwrap()
                        .insert(alarm.reference.clone(), at.elapsed());
                }
                centre.handle_and_close(alarm.alarm_id).await;
            }
        })
    };
    let mut real = Vec::new();
    for i in 0..REAL_DEVICES {
        real.push(engine.quic_client("real", &format!("r{i}")).await);
    }
    let quiet = real_alarms(&real, &sent, &offered, "q", 60).await;

    // The flood: every lab device sends 10 test alarms a frame, a frame every 40 ms (2,000/s in
    // all). VAKA_FLOOD_UNPACED=1: 50 a frame, as fast as the answers come.
    let paced = std::env::var_os("VAKA_FLOOD_UNPACED").is_none();
    let flooding = Arc::new(AtomicBool::new(true));
    let flood_sent = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for i in 0..FLOODERS {
        let client = engine.quic_client("lab", &format!("f{i}")).await;
        let (flooding, flood_sent) = (flooding.clone(), flood_sent.clone());
        flooders.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(40));
            while flooding.load(Ordering::Relaxed) {
                if paced {
                    tick.tick().await;
                }
                let batch: Vec<_> = (0..if paced { 10 } else { 50 })
                    .map(|k| events::alarm(format!("f{i}x{n}y{k}"), "0010", 5))
                    .collect();
                n += 1;
                if let Ok(replies) = client.send_batch(batch).await {
                    flood_sent.fetch_add(replies.len() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let flood_before = flood_sent.load(Ordering::Relaxed);
    let loaded = real_alarms(&real, &sent, &offered, "l", 60).await;
    let flood_rate = (flood_sent.load(Ordering::Relaxed) - flood_before) as f64
        / started.elapsed().as_secs_f64();
    let real_rate = loaded.len() as f64 / started.elapsed().as_secs_f64();
    flooding.store(false, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    centre_task.abort();

    let (q, l) = (p99(quiet), p99(loaded));
    eprintln!(
        "real alarm to centre p99: quiet {q:?}, under the flood {l:?}; flood {flood_rate:.0} test \
         alarms/s answered ({:.1}x the real rate of {real_rate:.1}/s), {} test offers",
        flood_rate / real_rate,
        test_offers.load(Ordering::Relaxed)
    );
    assert!(
        flood_rate >= 9.0 * real_rate,
        "the flood must be at least 90% of the alarm traffic: {flood_rate:.0}/s vs {real_rate:.1}/s"
    );
    assert!(
        !paced || l <= q * 2 + Duration::from_millis(100),
        "real alarms slowed by test alarms: p99 {l:?} under the flood vs {q:?} quiet"
    );
}
