//! Invariant 11 at the SCAIP front: a device that goes on with the nonce it was given before the
//! engine restarted is challenged again (401 stale=true), never refused (403); a wrong password
//! still is.
mod sip_support;

use sip_support::*;
use tokio::net::TcpStream;
use vaka_scaip::scaip::Snu;
use vaka_scaip::Challenge;

const ALARM: &str = "<stc>0010</stc><pri>5</pri>";

fn stale_challenge(r: &vaka_scaip::SipMessage) -> Challenge {
    assert_eq!(r.status(), Some(401), "a restart must not be answered 403");
    let c = Challenge::parse(r.www_authenticate().unwrap()).unwrap();
    assert!(
        c.stale,
        "401 with stale=true, so the device retries at once"
    );
    c
}

/// The device keys (SCAIP refs) of the events stored, in order.
fn stored_keys(env: &Env) -> Vec<String> {
    env.stored_events()
        .into_iter()
        .map(|e| e.event.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_device_with_a_nonce_from_before_a_restart_gets_401_stale_then_200_and_the_mrs() {
    let env = Env::start().await;
    let mut dev = UdpDevice::new(env.udp(), TRIGGER, PASSWORD).await;
    let mrs = dev.exchange("r-1", &mrq("R1", TRIGGER, ALARM)).await;
    assert_eq!(mrs.snu, Snu::Ok);
    let before = dev.challenge.clone().unwrap();

    let env = env.restart().await;
    // The device's next alarm carries the old nonce with the next nonce count.
    let m = dev.message("r-2", &mrq("R2", TRIGGER, ALARM));
    dev.send(&m).await;
    dev.challenge = Some(stale_challenge(&dev.recv(5).await));
    let m = dev.message("r-2", &mrq("R2", TRIGGER, ALARM));
    dev.send(&m).await;
    assert_eq!(dev.recv(5).await.status(), Some(200));
    let (mrs, _) = dev.mrs(10).await;
    assert_eq!((mrs.snu, mrs.reference.as_str()), (Snu::Ok, "R2"));

    // A wrong password is refused after the restart, with the old nonce or a new one.
    let mut wrong = UdpDevice::new(env.udp(), TRIGGER, "not-the-password").await;
    wrong.challenge = Some(before);
    let m = wrong.message("w-1", &mrq("W1", TRIGGER, ALARM));
    wrong.send(&m).await;
    assert_eq!(wrong.recv(5).await.status(), Some(403));
    let mut wrong = UdpDevice::new(env.udp(), TRIGGER, "not-the-password").await;
    assert_eq!(
        wrong.authenticated("w-2", &mrq("W2", TRIGGER, ALARM)).await,
        403
    );
    assert!(wrong.silent(300).await, "no <mrs> for a refused request");
    assert_eq!(stored_keys(&env), ["R1", "R2"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_device_with_a_nonce_from_before_a_restart_gets_401_stale_then_200_and_the_mrs() {
    let env = Env::start().await;
    let io = TcpStream::connect(env.tcp()).await.unwrap();
    let mut dev = StreamDevice {
        io,
        buf: Vec::new(),
        transport: "TCP",
    };
    let first = dev.message(1, &mrq("T1", TRIGGER, ALARM), None);
    dev.send(&first).await;
    let before = Challenge::parse(dev.recv().await.www_authenticate().unwrap()).unwrap();
    let mrs = dev.answered(2, &mrq("T1", TRIGGER, ALARM), &before).await;
    assert_eq!(mrs.snu, Snu::Ok);

    let env = env.restart().await;
    // The restart closed the connection: the device connects again and goes on with its nonce.
    let io = TcpStream::connect(env.tcp()).await.unwrap();
    let mut dev = StreamDevice {
        io,
        buf: Vec::new(),
        transport: "TCP",
    };
    let m = dev.message(3, &mrq("T2", TRIGGER, ALARM), Some(&before));
    dev.send(&m).await;
    let fresh = stale_challenge(&dev.recv().await);
    let mrs = dev.answered(4, &mrq("T2", TRIGGER, ALARM), &fresh).await;
    assert_eq!((mrs.snu, mrs.reference.as_str()), (Snu::Ok, "T2"));

    // A wrong password with the old nonce: 403.
    let mut dev_wrong = StreamDevice {
        io: TcpStream::connect(env.tcp()).await.unwrap(),
        buf: Vec::new(),
        transport: "TCP",
    };
    let mut m = dev_wrong.message(5, &mrq("T3", TRIGGER, ALARM), None);
    let a = vaka_scaip::auth::authorize(
        &before,
        "MESSAGE",
        "sip:alarm@localhost",
        TRIGGER,
        "not-the-password",
        "abc",
        5,
    );
    m.push_header("Authorization", &a.to_header_value())
        .unwrap();
    dev_wrong.send(&m).await;
    assert_eq!(dev_wrong.recv().await.status(), Some(403));
    assert_eq!(stored_keys(&env), ["T1", "T2"]);
    env.stop().await;
}
