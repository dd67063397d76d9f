//! Frames written by implementations no one here wrote.
//!
//! The `DC09_SPT_*` frames were produced by dc09-spt 0.0.4 (PyPI `dc09-spt`, a DC-09 dialler,
//! Apache-2.0) with `tests/python/gen_vectors.py`: clock fixed at 2026-01-02 03:04:05 UTC,
//! pad from `random.seed(24)`, keys `0123456789ABCDEF` (ASCII, AES-128) and bytes 0..=31
//! (AES-256). Their pads hold control characters (dc09-spt draws them from chr(20..=125)), the
//! sequence is written in hex (`000A` is its 10th message) and modifiers run without `/`.
//! The `REFERENCE_*` frames are the vectors of ../shared/reference/protocols.md.

use vaka_dc09::{
    decode, reply_for, CidData, DecodeError, Frame, Key, Payload, Qualifier, Reply, SiaEvent,
    Timestamp, Token, Window, XData,
};

const DC09_SPT_PLAIN_SIA: &[u8] = b"\nC63E0027\"SIA-DCS\"0001R12L3#1234[#1234|Nri1FA15]\r";
const DC09_SPT_PLAIN_CID: &[u8] = b"\n8B85002A\"ADM-CID\"000AR12L3#1234[#1234|1130 01 015]\r";
const DC09_SPT_PLAIN_NULL: &[u8] = b"\n3BC20016\"NULL\"0000R12L3#1234[]\r";
const DC09_SPT_ENC128_SIA: &[u8] = b"\n5E360099\"*SIA-DCS\"0002R12L3#1234[3A351653417A1F4A2FABA515310984621DEA5DE26E6B213EFE12BC7D0E922294807466676D95E7AA8A2110FE0CA1F19C49E120D7AF8ED32252B149480E29CD7E\r";
const DC09_SPT_ENC128_NULL: &[u8] = b"\n180B0056\"*NULL\"0003R12L3#1234[B5B951329CEBD2F4E2D0E24B9CF4EEECA88AAD6077FB7CD18354138BC6E332F9\r";
const DC09_SPT_ENC256_CID: &[u8] = b"\n53590076\"*ADM-CID\"0004L7#5678[385248887A16F6F60C486ADE52DE44F880ADA3BFBB66DB9CD560BAD0740A24350BC30583A43995081E4FC153C81D3944\r";

const REFERENCE_SIA: &[u8] = b"\nF4D20029\"SIA-DCS\"0001RF3L77#1234[#1234|NRR|Atest]\r";
const REFERENCE_EMPTY: &[u8] = b"\n96ED0016\"SIA-DCS\"0001L0#1234[]\r";
const REFERENCE_NAK: &[u8] = b"\nE4410025\"NAK\"0000R0L0A0[]_16:20:01,09-24-2025\r";

/// 2026-01-02 03:04:05 UTC, the generator's clock.
fn generated_at_ms() -> u64 {
    let ts = Timestamp::parse(b"03:04:05,01-02-2026").unwrap();
    u64::try_from(ts.unix_secs()).unwrap() * 1000
}

fn key128() -> Key {
    Key::parse("0123456789ABCDEF").unwrap()
}

fn key256() -> Key {
    Key::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
}

fn open(frame: &[u8], key: Option<&Key>, now_ms: u64) -> Result<vaka_dc09::Message, DecodeError> {
    decode(frame, |_| key, now_ms, &Window::default())
}

#[test]
fn dc09_spt_plain_sia() {
    let m = open(DC09_SPT_PLAIN_SIA, None, 0).unwrap();
    assert_eq!(m.header.token, Token::SiaDcs);
    assert_eq!(m.header.receiver.as_ref().unwrap().value(), 0x12);
    assert_eq!(m.header.line.as_ref().unwrap().value(), 3);
    assert_eq!(m.data, "#1234|Nri1FA15");
    let Payload::Sia(sia) = m.payload else {
        panic!("not SIA")
    };
    assert_eq!(
        sia.events,
        vec![SiaEvent {
            code: "FA".into(),
            address: Some("15".into()),
            area: Some("1".into()),
            ..SiaEvent::default()
        }]
    );
}

#[test]
fn dc09_spt_plain_cid_with_hex_sequence() {
    let m = open(DC09_SPT_PLAIN_CID, None, 0).unwrap();
    assert_eq!(m.header.seq.as_str(), "000A");
    assert_eq!(
        m.payload,
        Payload::Cid(CidData {
            account: Some("1234".into()),
            qualifier: Qualifier::New,
            code: 130,
            group: 1,
            zone: 15
        })
    );
}

#[test]
fn dc09_spt_plain_null() {
    let m = open(DC09_SPT_PLAIN_NULL, None, 0).unwrap();
    assert_eq!((m.header.token, m.payload), (Token::Null, Payload::Null));
    assert_eq!(m.header.seq.number(), Some(0));
}

#[test]
fn dc09_spt_encrypted_aes128_sia_with_xdata() {
    let key = key128();
    let m = open(DC09_SPT_ENC128_SIA, Some(&key), generated_at_ms()).unwrap();
    assert!(m.header.encrypted);
    assert_eq!(m.data, "#1234|Nri1FA15");
    assert_eq!(
        m.xdata,
        vec![
            XData {
                id: 'X',
                value: "18.0686".into()
            },
            XData {
                id: 'Y',
                value: "59.3293".into()
            },
        ]
    );
    assert_eq!(m.timestamp.unwrap().to_string(), "03:04:05,01-02-2026");
}

#[test]
fn dc09_spt_encrypted_null_and_aes256_cid() {
    let m = open(DC09_SPT_ENC128_NULL, Some(&key128()), generated_at_ms()).unwrap();
    assert_eq!(
        (m.header.token, m.payload, m.data.as_str()),
        (Token::Null, Payload::Null, "")
    );
    let m = open(DC09_SPT_ENC256_CID, Some(&key256()), generated_at_ms()).unwrap();
    let Payload::Cid(cid) = m.payload else {
        panic!("not CID")
    };
    assert_eq!(
        (cid.qualifier, cid.code, cid.group, cid.zone),
        (Qualifier::Restoral, 602, 0, 0)
    );
}

#[test]
fn dc09_spt_encrypted_window_key_and_answers() {
    let key = key128();
    let at = generated_at_ms();
    // 40 s late is still in the window, 41 s is not; 21 s early is not either.
    assert!(open(DC09_SPT_ENC128_SIA, Some(&key), at + 40_000).is_ok());
    let late = open(DC09_SPT_ENC128_SIA, Some(&key), at + 41_000);
    assert_eq!(late, Err(DecodeError::StaleTimestamp { skew_secs: -41 }));
    assert_eq!(reply_for(&late), Reply::Nak);
    let early = open(DC09_SPT_ENC128_SIA, Some(&key), at - 21_000);
    assert_eq!(early, Err(DecodeError::StaleTimestamp { skew_secs: 21 }));
    // The AES-256 account's key on the AES-128 account's message: decryption fails -> DUH.
    let wrong = open(DC09_SPT_ENC128_SIA, Some(&key256()), at);
    assert!(
        matches!(wrong, Err(DecodeError::DecryptFailed(_))),
        "{wrong:?}"
    );
    assert_eq!(reply_for(&wrong), Reply::Duh);
    let none = open(DC09_SPT_ENC128_SIA, None, at);
    assert_eq!(none, Err(DecodeError::NoKey));
    assert_eq!(reply_for(&none), Reply::Duh);
}

#[test]
fn reference_vectors() {
    let m = open(REFERENCE_SIA, None, 0).unwrap();
    let Payload::Sia(sia) = &m.payload else {
        panic!("not SIA")
    };
    assert_eq!(sia.events[0].code, "RR");
    assert_eq!(sia.text.as_deref(), Some("test"));
    let m = open(REFERENCE_EMPTY, None, 0).unwrap();
    assert_eq!((m.data.as_str(), m.header.receiver), ("", None));
    // The NAK frame checks (CRC, length) but has no '#' account: it is not a panel message.
    assert!(matches!(
        Frame::parse(REFERENCE_NAK),
        Err(DecodeError::BadFrame(_))
    ));
    assert_eq!(
        vaka_dc09::frame::check(REFERENCE_NAK).unwrap().body.len(),
        0x25
    );
}
