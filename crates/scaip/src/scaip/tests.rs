//! `<mrq>` tests: realistic requests, leniency, each snu error class, round trips and
//! property tests.

use proptest::prelude::*;

use super::*;
use crate::testdata::MRQ_PERSONAL_TRIGGER;

#[test]
fn personal_trigger_alarm() {
    let m = Mrq::parse(MRQ_PERSONAL_TRIGGER).unwrap();
    assert_eq!(m.reference, "A1B2C3");
    assert_eq!(m.version(), "01.00");
    assert_eq!(m.mty, Mty::Message);
    assert_eq!(m.cid, "4600123456");
    assert_eq!(m.dty, "0003");
    assert_eq!(m.dco.as_deref(), Some("002"));
    assert_eq!(m.crd, ["gsm:+46701234567"]);
    assert_eq!(m.stc.as_deref(), Some("0010"));
    assert_eq!(m.priority(), 7);
    assert_eq!(m.class(), EventClass::Alarm);
    assert_eq!(m.position(), None);
}

#[test]
fn namespace_order_whitespace_and_unknown_tags() {
    let with_ns = r#"<?xml version="1.0" encoding="UTF-8"?>
<mrq xmlns="http://www.hi.se/2012/XScaipXML" xmlns:v="urn:vendor">
    <pri> 3 </pri>
    <v:battery>87</v:battery>
    <CID>4711</CID>
    <stc>001</stc>
    <lge>
        <tim>2024-05-17T14:30:00+02</tim>
        <geo>59.336111,18.072778</geo>
    </lge>
    <crd>gsm:+4670111</crd><crd/><crd>sip:4711@vaka.example</crd>
    <dty>51</dty>
    <ref>Zz9</ref>
    <hbo>001</hbo>
    <mty/>
</mrq>"#;
    let prefixed = with_ns
        .replace("<mrq xmlns=", "<s:mrq xmlns:s=")
        .replace("</mrq>", "</s:mrq>");
    let without = with_ns.replace(" xmlns=\"http://www.hi.se/2012/XScaipXML\"", "");
    for xml in [with_ns.to_string(), prefixed, without] {
        let m = Mrq::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        assert_eq!(m.reference, "Zz9");
        assert_eq!(m.cid, "4711");
        assert_eq!(m.dty, "0051");
        assert_eq!(m.stc.as_deref(), Some("0001"), "3-digit stc normalised");
        assert_eq!(m.pri, Some(3));
        assert_eq!(m.mty, Mty::Message, "empty mty = default");
        assert!(m.heartbeat_adjustable());
        assert_eq!(m.crd, ["gsm:+4670111", "sip:4711@vaka.example"]);
        let lge = m.lge.as_ref().unwrap();
        assert_eq!(
            lge.geo,
            Some(GeoPos {
                lat: 59.336111,
                lon: 18.072778
            })
        );
        assert_eq!(lge.tim_ms, Some(1_715_949_000_000));
        assert_eq!(m.position(), lge.geo);
    }
}

#[test]
fn gga_position_and_heartbeat() {
    let xml = "<mrq><ref>7</ref><mty>PI</mty><cid>1</cid><dty>0051</dty><lco>35</lco>\
<lge><gga>$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47</gga></lge></mrq>";
    let m = Mrq::parse(xml).unwrap();
    assert_eq!(m.class(), EventClass::Heartbeat);
    assert_eq!(m.lco.as_deref(), Some("035"));
    let pos = m.position().unwrap();
    assert!((pos.lat - 48.1173).abs() < 1e-9);
    assert_eq!(m.lge.as_ref().unwrap().gga().unwrap().satellites, Some(8));
}

#[test]
fn lenient_schema_conflicts() {
    let base = |extra: &str| format!("<mrq><ref>R1</ref><cid>1</cid><dty>0003</dty>{extra}</mrq>");
    let ok = [
        "<cid>12345678901234567890123456789012</cid>", // 32 digits (table), not 16 (XSD)
        "<did>ABCDEFGH12345678</did>",                 // 16 printable (table), not 8 (XSD)
        "<did>dev #1 (hall)</did>",
        "<sco>0</sco>",
        "<sco>3</sco>",
        "<hbo>0</hbo>",
        "<hbo>2</hbo>",
        "<stc>0094</stc>",
        "<ver>1.0</ver>",
        "<ame>2</ame>",
        "<lge></lge>",
        "<dte>Långt namn &amp; mer text än trettiotvå tecken tillåter</dte>",
    ];
    for extra in ok {
        Mrq::parse(&base(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
    // The first occurrence of a duplicated single tag wins.
    let dup = Mrq::parse(&base("<pri>2</pri><pri>9</pri>")).unwrap();
    assert_eq!(dup.pri, Some(2));
}

#[test]
fn error_classes() {
    let cases: &[(&str, u8, Option<&str>)] = &[
        // 2: invalid format.
        ("", 2, None),
        ("plain text", 2, None),
        ("<mrs><ref>A</ref><snu>0</snu></mrs>", 2, None),
        ("<mrq><ref>A1</ref><cid>1</cid><dty>3</dty>", 2, Some("A1")),
        ("<mrq><ref>A1</ref><cid>1</dty></mrq>", 2, Some("A1")),
        // 10: reference missing or invalid.
        ("<mrq><cid>1</cid><dty>0003</dty></mrq>", 10, None),
        (
            "<mrq><ref></ref><cid>1</cid><dty>0003</dty></mrq>",
            10,
            None,
        ),
        (
            "<mrq><ref>abc-123</ref><cid>1</cid><dty>0003</dty></mrq>",
            10,
            Some("abc-123"),
        ),
        (
            "<mrq><ref>12345678901234567</ref><cid>1</cid><dty>0003</dty></mrq>",
            10,
            Some("12345678901234567"),
        ),
        // 7: mandatory tag missing.
        ("<mrq><ref>A1</ref><dty>0003</dty></mrq>", 7, Some("A1")),
        ("<mrq><ref>A1</ref><cid>1</cid></mrq>", 7, Some("A1")),
        (
            "<mrq><ref>A1</ref><cid> </cid><dty>0003</dty></mrq>",
            7,
            Some("A1"),
        ),
        // 3: wrong data.
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><pri>12</pri></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>12a</cid><dty>0003</dty></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>123456789012345678901234567890123</cid><dty>0003</dty></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>00031</dty></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><mty>XX</mty></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><sco>4</sco></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><cha>2</cha></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><hbo>4</hbo></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><stc>10</stc></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><did>12345678901234567</did></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><ver>one</ver></mrq>",
            3,
            Some("A1"),
        ),
        (
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><ame>x</ame></mrq>",
            3,
            Some("A1"),
        ),
    ];
    for (xml, snu, reference) in cases {
        let e = Mrq::parse(xml).expect_err(xml);
        assert_eq!((e.snu(), e.reference()), (*snu, *reference), "{xml}: {e}");
        assert_eq!(e.kind().snu().code(), *snu);
    }
}

#[test]
fn error_answers_build_valid_mrs() {
    let e =
        Mrq::parse("<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><pri>12</pri></mrq>").unwrap_err();
    let mrs = Mrs::new(e.reference().unwrap_or(""), e.kind().snu());
    assert_eq!(Mrs::parse(&mrs.to_xml()).unwrap(), mrs);
    assert!(e.to_string().contains("pri"));
}

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[^\\p{Cc}\\u{FFFE}\\u{FFFF}]{1,40}".prop_map(|s| s.trim().to_owned()))
        .prop_map(|o| o.filter(|s| !s.is_empty()))
}

fn digits(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9]{{{min},{max}}}")).unwrap()
}

prop_compose! {
    fn lge()(
        geo in proptest::option::of((-90.0f64..=90.0, -180.0f64..=180.0)),
        tim in proptest::option::of(0i64..253_402_300_799_000),
        gga in any::<bool>(),
    ) -> Lge {
        Lge {
            geo: geo.map(|(lat, lon)| GeoPos { lat, lon }),
            tim_ms: tim,
            gga: gga.then(|| "$GNGGA,001122.50,3356.4000,S,07036.0000,W,2,12,1.1,-5.0,M,,M,,".to_owned()),
            rejected: Vec::new(),
        }
    }
}

prop_compose! {
    fn mrq()(
        reference in "[0-9A-Za-z]{1,16}",
        ver in proptest::option::of("[0-9]{2}\\.[0-9]{2}"),
        sco in proptest::option::of(0u8..=3), cha in proptest::option::of(0u8..=1),
        mty in prop_oneof![Just(Mty::Message), Just(Mty::Reset), Just(Mty::Info), Just(Mty::Heartbeat)],
        hbo in proptest::option::of(0u8..=3),
        cid in digits(1, 32), dty in digits(4, 4), did in proptest::option::of("[!-~][ -~]{0,14}[!-~]"),
        dco in proptest::option::of(digits(3, 3)), dte in text(),
        crd in proptest::collection::vec("(gsm|sip|no-voice):\\+?[0-9]{1,15}", 0..3),
        stc in proptest::option::of(digits(4, 4)), stt in text(), pri in proptest::option::of(0u8..=9),
        lco in proptest::option::of(digits(3, 3)), lva in text(), lge in proptest::option::of(lge()),
        lte in text(), ico in proptest::option::of(digits(3, 3)), ite in text(),
        ame in proptest::option::of(0u32..99_999),
    ) -> Mrq {
        Mrq { reference, ver, sco, cha, mty, hbo, cid, dty, did, dco, dte, crd, stc, stt, pri, lco, lva, lge, lte, ico, ite, ame }
    }
}

fn valid_xml() -> String {
    MRQ_PERSONAL_TRIGGER.replace(
        "</mrq>",
        "<lge><geo>59.3,18.0</geo><tim>2024-05-17T14:30:00+02</tim></lge><dte>Anna &amp; Bo</dte></mrq>",
    )
}

proptest! {
    #[test]
    fn mrq_round_trip(m in mrq()) {
        let xml = m.to_xml();
        prop_assert_eq!(Mrq::parse(&xml), Ok(m), "{}", xml);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,300}") {
        let _ = Mrq::parse(&s);
        let _ = parse_geo(&s);
        let _ = parse_time(&s);
        let _ = parse_gga(&s);
    }

    #[test]
    fn mutated_mrq_never_panics_and_errors_carry_snu(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>(), 0u8..3), 1..6),
    ) {
        let mut chars: Vec<char> = valid_xml().chars().collect();
        for (at, c, op) in edits {
            let i = at.index(chars.len());
            match op {
                0 => chars[i] = c,
                1 => chars.insert(i, c),
                _ => { chars.remove(i); }
            }
        }
        let s: String = chars.into_iter().collect();
        if let Err(e) = Mrq::parse(&s) {
            prop_assert!([2u8, 3, 7, 10].contains(&e.snu()));
        }
    }

    #[test]
    fn gga_like_input_never_panics(s in "\\$(GP|GN|XX)GGA(,[0-9NSEW.\\-]{0,12}){0,16}(\\*[0-9A-F]{0,3})?") {
        let _ = parse_gga(&s);
    }
}

#[test]
fn malformed_position_is_dropped_and_the_alarm_kept() {
    let cases: &[(&str, &[&str])] = &[
        ("<geo>95,10</geo>", &["geo"]),
        ("<tim>yesterday</tim><geo>57.7,11.9</geo>", &["tim"]),
        ("<gga>$GPGGA,1*00</gga>", &["gga"]),
        (
            "<geo>x</geo><tim>y</tim><gga>z</gga>",
            &["geo", "tim", "gga"],
        ),
    ];
    for (lge, rejected) in cases {
        let xml = format!(
            "<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><stc>0010</stc><lge>{lge}</lge></mrq>"
        );
        let m = Mrq::parse(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
        assert_eq!(m.class(), EventClass::Alarm, "{xml}");
        let l = m.lge.as_ref().unwrap();
        assert_eq!(&l.rejected[..], *rejected, "{xml}");
        for tag in *rejected {
            match *tag {
                "geo" => assert_eq!(l.geo, None),
                "tim" => assert_eq!(l.tim_ms, None),
                _ => assert_eq!(l.gga, None),
            }
        }
    }
    let ok = Mrq::parse("<mrq><ref>A1</ref><cid>1</cid><dty>0003</dty><lge><tim>yesterday</tim><geo>57.7,11.9</geo></lge></mrq>").unwrap();
    assert_eq!(ok.position().map(|p| (p.lat, p.lon)), Some((57.7, 11.9)));
}
