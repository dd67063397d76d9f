//! Invariant 9 at the DC-09 front: link tests (NULL polls, supervision) are told from alarms by
//! their token before anything is decoded, and may hold at most half of `dc09.max_pending`, so
//! a flood of polls while the store is slow leaves room for an alarm. With the store held at
//! its gate, eight polls fill the polls' half (four held, four told DUH at once); an alarm that
//! comes after them is taken, and acknowledged once the store is back.
mod sip_support;

use sip_support::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use vaka_core::directory::{Centre, Dc09Credential, Device, Directory, Tenant};
use vaka_core::DeviceKey;
use vaka_dc09::{Account, Header, HexId, Message, Seq, Token};
use vaka_ingest::dc09::{Dc09Config, Dc09Server};
use vaka_router::{Clock, LiveDirectory};

const PANEL: &str = "1001";
const POLLER: &str = "1002";

/// The DC-09 accounts of the trigger (an alarm panel) and the tracker (polls).
fn accounts() -> Directory {
    let mut d = Directory::default();
    d.insert_tenant(Tenant::new("demo", &[CENTRE]));
    d.insert_centre(Centre::new(CENTRE, &["demo"]));
    for (id, account) in [(TRIGGER, PANEL), (TRACKER, POLLER)] {
        d.insert_device(Device {
            dc09: Some(Dc09Credential {
                account: account.into(),
                key: None,
            }),
            ..Device::new(DeviceKey::new("demo", id), "0003")
        });
    }
    d
}

fn frame(account: &str, token: Token, data: &str, seq: u16) -> Vec<u8> {
    let header = Header {
        token,
        encrypted: false,
        seq: Seq::new(seq).unwrap(),
        receiver: None,
        line: HexId::new("0"),
        account: Account::new(account).unwrap(),
    };
    Message::new(header, data.to_owned(), Vec::new(), None)
        .unwrap()
        .encode(None, &[7; 16])
        .unwrap()
}

/// The answer's token, or `None` if nothing came within `ms`.
async fn answer(sock: &UdpSocket, ms: u64) -> Option<String> {
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_millis(ms), sock.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Some(text.split('"').nth(1).unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_hold_at_most_half_of_the_pending_room_and_an_alarm_gets_the_rest() {
    let env = Env::start().await;
    let cfg = Dc09Config {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        max_pending: 8,
        ..Dc09Config::default()
    };
    let front = Dc09Server::start(
        &cfg,
        env.router.clone(),
        LiveDirectory::new(accounts()),
        Clock::new(),
    )
    .unwrap();
    let addr: SocketAddr = front.local_addrs().0.unwrap();
    env.gate.hold();

    let polls = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for seq in 1..=8 {
        polls
            .send_to(&frame(POLLER, Token::Null, "", seq), addr)
            .await
            .unwrap();
    }
    // Half of the room: four polls wait for the store, the other four are told busy at once.
    for _ in 0..4 {
        assert_eq!(answer(&polls, 5_000).await.as_deref(), Some("DUH"));
    }
    assert_eq!(answer(&polls, 300).await, None, "four polls held");

    let panel = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let alarm = frame(PANEL, Token::SiaDcs, "#1001|NMA01", 21);
    panel.send_to(&alarm, addr).await.unwrap();
    assert_eq!(
        answer(&panel, 500).await,
        None,
        "the alarm is taken (waiting for the store), not told busy"
    );
    env.gate.release();
    assert_eq!(answer(&panel, 5_000).await.as_deref(), Some("ACK"));
    for _ in 0..4 {
        assert_eq!(answer(&polls, 5_000).await.as_deref(), Some("ACK"));
    }
    front.shutdown().await;
    env.stop().await;
}
