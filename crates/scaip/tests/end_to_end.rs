//! One alarm through the codec the way the ingest layer will drive it, using only the public
//! API: challenge, authenticated MESSAGE with `<mrq>`, retransmission, 200 OK, and the `<mrs>`
//! MESSAGE back to the device's contact.

use vaka_scaip::auth::{
    authorize, Credential, DigestAlgorithm, Expected, InvalidReason, WithoutQop,
};
use vaka_scaip::scaip::{EventClass, Mrq, Mrs, Snu};
use vaka_scaip::sip::{find_message, Frame, Method, NewRequest, SipMessage};
use vaka_scaip::transaction::{ClientRetransmit, RetransmitAction};
use vaka_scaip::{
    AuthOutcome, Authorization, Challenge, NonceCounter, NonceIssuer, ServerTransactions, TxLookup,
};

const REALM: &str = "alarm.vaka.example";
const DEVICE_USER: &str = "4600123456";
const DEVICE_PASSWORD: &str = "hemligt-123";

const MRQ: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq xmlns=\"http://www.hi.se/2012/XScaipXML\">\
<ref>0042</ref><mty>ME</mty><cid>4600123456</cid><dty>0003</dty><dco>002</dco>\
<crd>gsm:+46701234567</crd><stc>0010</stc><pri>5</pri></mrq>";

/// What a personal trigger sends, with or without credentials.
fn device_message(cseq: u32, branch: &str, authorization: Option<&str>) -> Vec<u8> {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "MESSAGE sip:arc@{REALM} SIP/2.0\r\n\
v: SIP/2.0/UDP 10.20.30.40:5060;branch={branch};rport\r\n\
f: <sip:{DEVICE_USER}@{REALM}>;tag=dev1\r\n\
t: <sip:arc@{REALM}>\r\n\
i: call-{cseq}@10.20.30.40\r\n\
CSeq: {cseq} MESSAGE\r\n\
m: <sip:{DEVICE_USER}@10.20.30.40:5060>\r\n\
{auth}c: application/scaip+xml\r\n\
l: {}\r\n\r\n{MRQ}",
        MRQ.len()
    )
    .into_bytes()
}

#[test]
fn alarm_round_trip_through_the_codec() {
    let issuer = NonceIssuer::new(b"per-node secret from config", 300_000);
    let mut counter = NonceCounter::new(10_000);
    let mut transactions = ServerTransactions::new(10_000);
    let mut now = 1_700_000_000_000u64;

    // 1. No credentials: answer 401 with a challenge.
    let first = SipMessage::parse(&device_message(1, "z9hG4bKaaa", None)).unwrap();
    assert!(first.authorization().is_none());
    let TxLookup::New(key) = transactions.on_request(&first, now) else {
        panic!("new transaction")
    };
    let challenge = issuer.challenge(REALM, DigestAlgorithm::Md5, now, 7, false);
    let mut unauthorized = SipMessage::response(&first, 401, "Unauthorized", "srv-1");
    unauthorized
        .push_header("WWW-Authenticate", &challenge.to_header_value())
        .unwrap();
    assert!(transactions.respond(&key, 401, unauthorized.to_bytes(), false, now));

    // 2. The device reads the challenge and resends with credentials, as a new transaction.
    let got = SipMessage::parse(&unauthorized.to_bytes()).unwrap();
    assert_eq!(got.status(), Some(401));
    let got_challenge = Challenge::parse(got.www_authenticate().unwrap()).unwrap();
    let uri = format!("sip:arc@{REALM}");
    let creds = authorize(
        &got_challenge,
        "MESSAGE",
        &uri,
        DEVICE_USER,
        DEVICE_PASSWORD,
        "c0ffee",
        1,
    );
    let wire = device_message(2, "z9hG4bKbbb", Some(&creds.to_header_value()));

    // Over TCP the same bytes are framed first.
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(&wire);
    assert_eq!(find_message(&stream, 65_536), Ok(Frame::KeepAlive(4)));
    assert_eq!(
        find_message(&stream[4..], 65_536),
        Ok(Frame::Message(wire.len()))
    );

    now += 1_500;
    let mut request = SipMessage::parse(&wire).unwrap();
    request.stamp_source("198.51.100.20", 40_123);
    let TxLookup::New(key) = transactions.on_request(&request, now) else {
        panic!("new transaction")
    };
    let auth = Authorization::parse(request.authorization().unwrap()).unwrap();
    assert_eq!(auth.username, DEVICE_USER);
    let expected = Expected {
        method: request.method().as_str(),
        request_uri: request.request_uri().unwrap(),
        realm: REALM,
        algorithm: DigestAlgorithm::Md5,
        without_qop: WithoutQop::Refused,
    };
    let outcome = issuer.verify(
        &auth,
        &expected,
        Credential::Password(DEVICE_PASSWORD),
        now,
        &mut counter,
    );
    assert_eq!(outcome, AuthOutcome::Ok);

    // 3. The body is an alarm.
    assert!(request.is_scaip());
    let mrq = Mrq::parse(request.body_str().unwrap()).unwrap();
    assert_eq!(
        (mrq.reference.as_str(), mrq.cid.as_str(), mrq.class()),
        ("0042", DEVICE_USER, EventClass::Alarm)
    );

    // 4. 200 OK once durable; a retransmission gets the same bytes and no second event.
    let ok = SipMessage::response(&request, 200, "OK", "srv-2").to_bytes();
    assert!(transactions.respond(&key, 200, ok.clone(), false, now));
    let retransmitted = SipMessage::parse(&wire).unwrap();
    assert_eq!(
        transactions.on_request(&retransmitted, now + 500),
        TxLookup::Retransmission(Some(ok.clone()))
    );
    let ok = SipMessage::parse(&ok).unwrap();
    assert_eq!(ok.top_via().response_target(), ("198.51.100.20", 40_123));

    // A replayed Authorization in a new transaction is refused.
    let replay = SipMessage::parse(&device_message(
        3,
        "z9hG4bKccc",
        Some(&creds.to_header_value()),
    ))
    .unwrap();
    let auth = Authorization::parse(replay.authorization().unwrap()).unwrap();
    let expected = Expected {
        request_uri: replay.request_uri().unwrap(),
        ..expected
    };
    let outcome = issuer.verify(
        &auth,
        &expected,
        Credential::Password(DEVICE_PASSWORD),
        now,
        &mut counter,
    );
    assert_eq!(outcome, AuthOutcome::Invalid(InvalidReason::Replay));

    // 5. The answer goes as our own MESSAGE to the device's contact.
    let contact = request.contacts().unwrap().remove(0);
    let mrs = Mrs {
        hbi: Some(60),
        ..Mrs::new(mrq.reference.clone(), Snu::Ok)
    };
    let out = NewRequest {
        request_uri: &contact.uri,
        sent_by: "alarm.vaka.example:5060",
        branch: "mrs-0001",
        from_uri: &uri,
        from_tag: "srv-3",
        to_uri: &request.from().uri,
        call_id: "mrs-0001@alarm.vaka.example",
        cseq: 1,
        ..NewRequest::default()
    }
    .scaip_message(&mrs.to_xml())
    .unwrap();
    let mut schedule = ClientRetransmit::new(now, false);
    assert_eq!(schedule.poll(now + 500), RetransmitAction::Retransmit);

    // The device side reads it.
    let at_device = SipMessage::parse(&out.to_bytes()).unwrap();
    assert_eq!(at_device.method(), &Method::Message);
    assert_eq!(
        at_device.request_uri(),
        Some("sip:4600123456@10.20.30.40:5060")
    );
    assert_eq!(Mrs::parse(at_device.body_str().unwrap()).unwrap(), mrs);
}

#[test]
fn garbage_body_is_answered_with_snu_2() {
    let raw = device_message(1, "z9hG4bKx", None);
    let text = String::from_utf8(raw)
        .unwrap()
        .replace("<ref>0042</ref><mty>", "<ref>0042</ref><<mty>");
    let msg = SipMessage::parse(text.as_bytes()).unwrap();
    let err = Mrq::parse(msg.body_str().unwrap()).unwrap_err();
    assert_eq!((err.snu(), err.reference()), (2, Some("0042")));
    let answer = Mrs::new(err.reference().unwrap_or_default(), err.kind().snu());
    assert!(answer.to_xml().contains("<ref>0042</ref><snu>2</snu>"));
}
