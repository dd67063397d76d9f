//! Our frames checked by implementations no one here wrote: `pysiaalarm` (receiver) parses
//! the messages we encode and must ACK them as we do; `dc09-spt` (dialler) checks our
//! ACK/NAK/DUH as answers to its own messages. Runs `tests/python/interop.py` with
//! `$VAKA_PYTHON` (default `python3`); skipped, with the reason printed, when that
//! interpreter cannot import pysiaalarm, dc09_spt and Crypto (pycryptodome). Set up with:
//!
//!     python3 -m venv venv && venv/bin/pip install pysiaalarm && \
//!         venv/bin/pip install --no-deps dc09-spt && VAKA_PYTHON=venv/bin/python cargo test ...

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use vaka_dc09::{ack, duh, nak, Account, Header, HexId, Key, Message, Seq, Timestamp, Token};

const KEY: &str = "0123456789ABCDEF";

fn python() -> String {
    std::env::var("VAKA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn available(py: &str) -> Result<(), String> {
    let out = Command::new(py)
        .args(["-c", "import pysiaalarm, dc09_spt, Crypto"])
        .output()
        .map_err(|e| format!("cannot run {py}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{py} cannot import pysiaalarm, dc09_spt and Crypto: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn header(token: Token, encrypted: bool, seq: u16) -> Header {
    Header {
        token,
        encrypted,
        seq: Seq::new(seq).unwrap(),
        receiver: HexId::new("12"),
        line: HexId::new("3"),
        account: Account::new("1234").unwrap(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_key(encrypted: bool) -> String {
    if encrypted {
        format!("\"{KEY}\"")
    } else {
        "null".to_owned()
    }
}

#[test]
fn independent_implementations_accept_our_frames() {
    let py = python();
    if let Err(reason) = available(&py) {
        println!("skipped: {reason}");
        return;
    }
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let now = Timestamp::from_unix_ms(now_ms);
    let key = Key::from_ascii(KEY).unwrap();
    let mut cases = Vec::new();
    let mut seq = 0;
    for encrypted in [false, true] {
        for (token, data, expect) in [
            (
                Token::SiaDcs,
                "#1234|Nri1/BA01",
                r#""code": "BA", "area": "1""#,
            ),
            (
                Token::AdmCid,
                "#1234|1130 01 015",
                r#""qualifier": "1", "event": "130", "group": "01""#,
            ),
            (Token::Null, "", r#""kind": "null""#),
        ] {
            seq += 1;
            let h = header(token.clone(), encrypted, seq);
            let m = Message::new(h.clone(), data.into(), Vec::new(), Some(now)).unwrap();
            let frame = m.encode(Some(&key), &[seq as u8; 16]).unwrap();
            let our_ack = ack(&h, Some(&key), now, &[7; 16]).unwrap();
            cases.push(format!(
                r#"{{"check": "message", "frame_hex": "{}", "account": "1234", "key": {}, "token": "{}", "seq": "{}", {expect}, "ack_hex": "{}"}}"#,
                hex(&frame),
                json_key(encrypted),
                token.as_str(),
                h.seq,
                hex(&our_ack),
            ));
            cases.push(format!(
                r#"{{"check": "answer", "frame_hex": "{}", "account": "1234", "key": {}, "seq": "{}", "expect": "ACK", "timestamped": {encrypted}}}"#,
                hex(&our_ack),
                json_key(encrypted),
                h.seq,
            ));
            cases.push(format!(
                r#"{{"check": "answer", "frame_hex": "{}", "account": "1234", "key": null, "seq": "{}", "expect": "DUH", "timestamped": false}}"#,
                hex(&duh(Some(&h))),
                h.seq,
            ));
        }
    }
    cases.push(format!(
        r#"{{"check": "answer", "frame_hex": "{}", "account": "1234", "key": null, "seq": "0001", "expect": "NAK", "timestamped": true}}"#,
        hex(&nak(now)),
    ));

    let script = format!(
        "{}/tests/python/interop.py",
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR: run by cargo")
    );
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok {}", cases.len()));
    println!("{}", stdout.trim());
}
