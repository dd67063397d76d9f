//! The SIA DC-09 front over real sockets (`vaka serve` with `[dc09]` on TCP and UDP):
//! - panels made of `dc09-spt` (an implementation no one here wrote) send plain and encrypted
//!   SIA-DCS and ADM-CID over TCP and UDP: each gets ACK (checked by dc09-spt, *ACK decrypted)
//!   and each alarm reaches the gRPC centre once; a resend of the same bytes gets ACK and no
//!   second alarm (invariant 2);
//! - a wrong key, a stale timestamp, a bad CRC, an unknown account and a plain message to an
//!   account with a key each get their answer (DUH, NAK, NAK, DUH, DUH) and make no event;
//! - a NULL-polling account supervised as EN 50136 SP6 (20 s) that goes quiet raises one
//!   "device silent" alarm after its reporting time, not before, and its status shows the
//!   category.
//!
//! Needs Python with `dc09-spt` and `pysiaalarm` (pycryptodome): `make deps` installs them.
#[path = "support/admin.rs"]
mod admin;
#[path = "support/binary.rs"]
mod binary;
#[path = "support/sipp.rs"]
mod sipp;

use admin::{Engine, OPERATOR};
use binary::{free_tcp_port, free_udp_port};
use serde_json::{json, Value};
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vaka_dc09::{Account, Header, HexId, Key, Message, Seq, Timestamp, Token};

const KEY_A: &str = "000102030405060708090A0B0C0D0E0F";
const KEY_B: &str = "F0E0D0C0B0A090807060504030201000F0E0D0C0B0A090807060504030201000";
const CENTRE_TOKEN: &str = "token-of-the-dc09-centre";

fn directory(udp: u16, tcp: u16) -> String {
    format!(
        "[dc09]\nudp = \"127.0.0.1:{udp}\"\ntcp = \"127.0.0.1:{tcp}\"\n\
         [[tenants]]\nid = \"t\"\ncentres = [\"c1\"]\n\
         receipt_deadline_secs = 600\naccept_deadline_secs = 600\n\
         [[centres]]\nid = \"c1\"\ntenants = [\"t\"]\ntoken = \"{CENTRE_TOKEN}\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"plain-tcp\"\ntype = \"0003\"\ndc09_account = \"1001\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"plain-udp\"\ntype = \"0003\"\ndc09_account = \"1002\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"aes-tcp\"\ntype = \"0003\"\ndc09_account = \"2001\"\n\
         dc09_key = \"{KEY_A}\"\n\
         [[devices]]\ntenant = \"t\"\nid = \"aes-udp\"\ntype = \"0003\"\ndc09_account = \"2002\"\n\
         dc09_key = \"{KEY_B}\"\n"
    )
}

/// A NULL-polling device supervised as SP6 (20 s): only where silence is what is tested.
const POLLER: &str = "[[devices]]\ntenant = \"t\"\nid = \"poller\"\ntype = \"0010\"\n\
    dc09_account = \"3001\"\ndc09_key = \"000102030405060708090A0B0C0D0E0F\"\nsupervision = \"SP6\"\n";

fn python() -> String {
    std::env::var("VAKA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Sends each message through the dc09-spt panel script; one answer per send.
fn panel(messages: &[Value]) -> Vec<Value> {
    let py = python();
    let check = Command::new(&py)
        .args(["-c", "import dc09_spt, pysiaalarm, Crypto"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        check.status.success(),
        "{py} cannot import dc09_spt, pysiaalarm and Crypto (run `make deps`): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let script = format!(
        "{}/tests/python/dc09_panel.py",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for m in messages {
            writeln!(stdin, "{m}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dc09_panel.py failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn answers(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            r["answer"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("none: {}", r["error"]))
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dc09_spt_panels_alarm_over_tcp_and_udp_plain_and_encrypted_and_a_resend_is_one_alarm() {
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let engine = Engine::start(&directory(udp, tcp), &[]);
    let mut centre = engine.centre(CENTRE_TOKEN).await;

    let msg =
        |transport: &str, account: &str, key: Option<&str>, kind: &str, seq: u32, params: Value| {
            let port = if transport == "tcp" { tcp } else { udp };
            json!({"transport": transport, "port": port, "account": account, "key": key,
               "type": kind, "seq": seq, "params": params})
        };
    let cases = [
        (
            msg(
                "tcp",
                "1001",
                None,
                "SIA-DCS",
                1,
                json!({"code": "FA", "zone": "3", "area": "1"}),
            ),
            "plain-tcp",
            "sia:FA",
        ),
        (
            msg(
                "udp",
                "1002",
                None,
                "ADM-CID",
                2,
                json!({"code": "101", "q": "1", "zone": "15"}),
            ),
            "plain-udp",
            "cid:101",
        ),
        (
            msg(
                "tcp",
                "2001",
                Some(KEY_A),
                "SIA-DCS",
                3,
                json!({"code": "MA", "zone": "7"}),
            ),
            "aes-tcp",
            "sia:MA",
        ),
        (
            msg(
                "udp",
                "2002",
                Some(KEY_B),
                "ADM-CID",
                4,
                json!({"code": "130", "q": "1", "zone": "2", "lat": "59.3293", "lon": "18.0686"}),
            ),
            "aes-udp",
            "cid:130",
        ),
    ];
    for (m, device, code) in &cases {
        let got = panel(std::slice::from_ref(m));
        assert_eq!(answers(&got), ["ACK"], "{m}");
        let offer = centre.offer(Duration::from_secs(10)).await;
        let alarm = offer.alarm.unwrap();
        assert_eq!(
            (alarm.device.as_str(), alarm.code.as_str()),
            (*device, *code)
        );
        if *device == "aes-udp" {
            let p = alarm
                .position
                .expect("the X/Y extended data is the alarm's position");
            assert!((p.lat - 59.3293).abs() < 1e-6 && (p.lon - 18.0686).abs() < 1e-6);
        }
    }

    // The same message resent (same bytes, same sequence; a lost ACK): ACK, no second alarm.
    let mut resend = cases[0].0.clone();
    resend["repeat"] = json!(2);
    assert_eq!(answers(&panel(&[resend])), ["ACK", "ACK"]);
    let mut resend_udp = cases[3].0.clone();
    resend_udp["repeat"] = json!(2);
    assert_eq!(answers(&panel(&[resend_udp])), ["ACK", "ACK"]);
    centre.no_offer_for(Duration::from_secs(2)).await;
    // Not even a repeat of the open alarm: the resends were recognised, nothing was stored.
    for device in ["plain-tcp", "aes-udp"] {
        let page = engine
            .get(
                &format!("/api/v1/tenants/t/alarms?device={device}"),
                OPERATOR,
            )
            .json();
        let alarms = page["alarms"].as_array().unwrap();
        assert_eq!(alarms.len(), 1, "{page}");
        assert_eq!(alarms[0]["repeats"], 0, "{page}");
    }

    // A trouble and its restoral over TCP: one technical alarm, restored.
    let trouble = msg("tcp", "1001", None, "SIA-DCS", 9, json!({"code": "AT"}));
    let restoral = msg("tcp", "1001", None, "SIA-DCS", 10, json!({"code": "AR"}));
    assert_eq!(answers(&panel(&[trouble])), ["ACK"]);
    let t = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(t.code, "sia:AT");
    assert_eq!(answers(&panel(&[restoral])), ["ACK"]);
    centre.no_offer_for(Duration::from_secs(1)).await;

    let metrics = binary::get_metrics(engine.http).unwrap();
    let acks: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("vaka_replies_total") && l.contains("stage=\"dc09\""))
        .filter(|l| l.contains("answer=\"ACK\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(acks, 10.0, "{metrics}");
}

/// A frame of `account` written by our own encoder, optionally encrypted with `key` and
/// stamped `ts`; `seq` as given.
fn frame(
    account: &str,
    token: Token,
    key: Option<&str>,
    data: &str,
    ts: Option<Timestamp>,
    seq: u16,
) -> Vec<u8> {
    let header = Header {
        token,
        encrypted: key.is_some(),
        seq: Seq::new(seq).unwrap(),
        receiver: None,
        line: HexId::new("0"),
        account: Account::new(account).unwrap(),
    };
    let msg = Message::new(header, data.to_owned(), Vec::new(), ts).unwrap();
    let key = key.map(|k| Key::parse(k).unwrap());
    msg.encode(key.as_ref(), &[7; 16]).unwrap()
}

fn udp_answer(sock: &UdpSocket, port: u16, bytes: &[u8]) -> String {
    sock.send_to(bytes, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer within 5 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn token_of(answer: &str) -> &str {
    answer
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("not a DC-09 answer: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_nak_or_duh_and_make_no_event() {
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let engine = Engine::start(&directory(udp, tcp), &[]);
    let mut centre = engine.centre(CENTRE_TOKEN).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let now = || Some(Timestamp::from_unix_ms(now_ms()));
    let data = "#2001|NBA01";

    let wrong_key = frame("2001", Token::SiaDcs, Some(KEY_B), data, now(), 11);
    assert_eq!(token_of(&udp_answer(&sock, udp, &wrong_key)), "DUH");
    let stale = Some(Timestamp::from_unix_ms(now_ms() - 600_000));
    let stale = frame("2001", Token::SiaDcs, Some(KEY_A), data, stale, 12);
    let nak = udp_answer(&sock, udp, &stale);
    assert_eq!(token_of(&nak), "NAK");
    assert!(nak.contains("]_"), "a NAK carries our time: {nak:?}");
    // Long enough that the NAK (47 bytes) is no larger than it: over UDP an error answer is
    // never larger than what it answers.
    let mut bad_crc = frame(
        "1002",
        Token::SiaDcs,
        None,
        "#1002|NBA01|Aback door, ground floor",
        None,
        13,
    );
    bad_crc[1] = if bad_crc[1] == b'0' { b'1' } else { b'0' };
    assert_eq!(token_of(&udp_answer(&sock, udp, &bad_crc)), "NAK");
    let unknown = frame("ABCD", Token::SiaDcs, None, "#ABCD|NBA01", None, 14);
    assert_eq!(token_of(&udp_answer(&sock, udp, &unknown)), "DUH");
    let plain_to_keyed = frame("2001", Token::SiaDcs, None, data, None, 15);
    assert_eq!(token_of(&udp_answer(&sock, udp, &plain_to_keyed)), "DUH");
    // Garbage too short to carry an answer as large: not answered (no amplification).
    sock.send_to(b"\nx\r", ("127.0.0.1", udp)).unwrap();
    let mut buf = [0u8; 64];
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a 3-byte datagram got an answer"
    );

    // The same over TCP, on one connection, then a good one still works on it.
    use std::io::Read;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ask = |bytes: &[u8]| {
        conn.write_all(bytes).unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(token_of(&ask(&wrong_key)), "DUH");
    assert_eq!(token_of(&ask(&unknown)), "DUH");
    centre.no_offer_for(Duration::from_secs(1)).await;
    let good = frame("2001", Token::SiaDcs, Some(KEY_A), data, now(), 16);
    assert_eq!(token_of(&ask(&good)), "*ACK");
    let alarm = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (alarm.device.as_str(), alarm.code.as_str()),
        ("aes-tcp", "sia:BA")
    );
    // Nothing was stored for the refused ones: the device's events are the good one only.
    let events = engine
        .get("/api/v1/tenants/t/alarms?device=aes-tcp", OPERATOR)
        .json();
    assert_eq!(
        events["alarms"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );

    let metrics = binary::get_metrics(engine.http).unwrap();
    for kind in [
        "decrypt_failed",
        "stale_timestamp",
        "bad_crc",
        "unknown_account",
        "plain_refused",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with("vaka_errors_total")
                && l.contains("stage=\"dc09\"")
                && l.contains(&format!("kind=\"{kind}\""))),
            "no vaka_errors_total{{stage=\"dc09\",kind=\"{kind}\"}}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_polling_account_that_goes_quiet_raises_one_silent_alarm_after_its_category() {
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let engine = Engine::start(&(directory(udp, tcp) + POLLER), &[]);
    let mut centre = engine.centre(CENTRE_TOKEN).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // Encrypted NULL polls every 5 s for 25 s: longer than SP6's 20 s, so only the polls keep
    // the device from being silent.
    let mut last_poll = Instant::now();
    for i in 0..6 {
        let null = frame(
            "3001",
            Token::Null,
            Some(KEY_A),
            "",
            Some(Timestamp::from_unix_ms(now_ms())),
            0,
        );
        // Taken before sending: the engine hears the poll after this, never before.
        let sent = Instant::now();
        assert_eq!(token_of(&udp_answer(&sock, udp, &null)), "*ACK");
        last_poll = sent;
        if i < 5 {
            centre.no_offer_for(Duration::from_secs(5)).await;
        }
    }
    let status = engine
        .get("/api/v1/tenants/t/devices/poller/status", OPERATOR)
        .json();
    assert_eq!(status["supervision"]["category"], "SP6", "{status}");
    assert_eq!(status["supervision"]["reporting_secs"], 20);
    assert_eq!(status["supervision"]["silent_after_secs"], 20);

    // Quiet now: nothing before 20 s, one "device silent" alarm soon after.
    centre.no_offer_for(Duration::from_secs(18)).await;
    let offer = centre.offer(Duration::from_secs(8)).await;
    let silent_after = last_poll.elapsed();
    let alarm = offer.alarm.unwrap();
    assert_eq!(
        (alarm.device.as_str(), alarm.code.as_str()),
        ("poller", "device-silent")
    );
    assert!(
        silent_after >= Duration::from_secs(20) && silent_after < Duration::from_secs(26),
        "silent alarm {silent_after:?} after the last poll"
    );
    centre.no_offer_for(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_put_through_the_api_reports_at_once_and_its_key_is_never_shown() {
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let engine = Engine::start(&directory(udp, tcp), &[]);
    let mut centre = engine.centre(CENTRE_TOKEN).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let alarm = || {
        let ts = Some(Timestamp::from_unix_ms(now_ms()));
        frame(
            "4001",
            Token::AdmCid,
            Some(KEY_B),
            "#4001|1101 01 001",
            ts,
            1,
        )
    };
    assert_eq!(token_of(&udp_answer(&sock, udp, &alarm())), "DUH");

    // Another device may not take an account in use.
    let taken = engine.send(
        "PUT",
        "/api/v1/tenants/t/devices/thief",
        OPERATOR,
        &json!({"type": "0003", "dc09_account": "1001"}),
    );
    assert_eq!(taken.status, 422, "{}", taken.body);
    assert!(taken.body.contains("dc09.account"), "{}", taken.body);

    let r = engine.send(
        "PUT",
        "/api/v1/tenants/t/devices/new-panel",
        OPERATOR,
        &json!({"type": "0003", "dc09_account": "4001", "dc09_key": KEY_B, "supervision": "DP2"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.body.contains(KEY_B), "the key came back: {}", r.body);
    let shown = engine.get("/api/v1/tenants/t/devices/new-panel", OPERATOR);
    assert!(
        !shown.body.contains(KEY_B),
        "the key is shown: {}",
        shown.body
    );
    let v = shown.json();
    assert_eq!(v["dc09"]["account"], "4001", "{v}");
    assert_eq!(v["dc09"]["encrypted"], true, "{v}");

    assert_eq!(token_of(&udp_answer(&sock, udp, &alarm())), "*ACK");
    let a = centre.offer(Duration::from_secs(10)).await.alarm.unwrap();
    assert_eq!(
        (a.device.as_str(), a.code.as_str()),
        ("new-panel", "cid:101")
    );
    let status = engine
        .get("/api/v1/tenants/t/devices/new-panel/status", OPERATOR)
        .json();
    assert_eq!(status["supervision"]["category"], "DP2", "{status}");
    assert_eq!(status["supervision"]["reporting_secs"], 1800);
    assert_eq!(status["supervision"]["second_path_secs"], 90_000);
}
