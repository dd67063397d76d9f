//! Digest headers: `Authorization::parse` (what the SIP front runs on every request with
//! credentials) and `Challenge::parse` (WWW-Authenticate, the device side), each with its round
//! trip parse -> to_header_value -> parse. A parsed Authorization then goes through the server's
//! full check, `NonceIssuer::verify`, for both algorithms and every without-qop policy; a check
//! that accepts must refuse the same credentials the second time as a replay (unless they carry
//! no count and the policy lets them be reused).
//!
//! The MAC of a nonce and the hash of a response cannot be guessed by the fuzzer, so two values
//! stand in for them to reach the checks behind: a nonce written `fresh` (or `old`) is replaced by
//! one the issuer made now (or long ago), and a response written `right` by the one the password
//! gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka_scaip::auth::{expected_response, Credential, Expected, WithoutQop};
use vaka_scaip::{
    AuthOutcome, Authorization, Challenge, DigestAlgorithm, NonceCounter, NonceIssuer,
};

const NOW_MS: u64 = 1_780_000_000_000;
const LIFETIME_MS: u64 = 300_000;
const REALM: &str = "alarm.vaka.example";
const REQUEST_URI: &str = "sip:arc@alarm.vaka.example";
const PASSWORD: &str = "correct horse";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(c) = Challenge::parse(s) {
        let text = c.to_header_value();
        assert_eq!(
            Challenge::parse(&text),
            Ok(c),
            "challenge printed as {text:?}"
        );
    }

    let Ok(mut auth) = Authorization::parse(s) else {
        return;
    };
    let text = auth.to_header_value();
    assert_eq!(
        Authorization::parse(&text).as_ref(),
        Ok(&auth),
        "credentials printed as {text:?}"
    );

    let issuer = if data.len() % 2 == 0 {
        NonceIssuer::new(b"fuzz secret", LIFETIME_MS)
    } else {
        NonceIssuer::new(b"fuzz secret", LIFETIME_MS).with_opaque("5ccc069c")
    };
    match auth.nonce.as_str() {
        "fresh" => auth.nonce = issuer.issue(NOW_MS, 7),
        "old" => auth.nonce = issuer.issue(NOW_MS - 2 * LIFETIME_MS, 7),
        _ => {}
    }
    let _ = issuer.check(&auth.nonce, NOW_MS);
    let _ = expected_response(&auth, "MESSAGE", Credential::Password(PASSWORD));
    if auth.response == "right" {
        if let Ok(r) = expected_response(&auth, "MESSAGE", Credential::Password(PASSWORD)) {
            auth.response = r;
        }
    }

    for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        for without_qop in [WithoutQop::Refused, WithoutQop::Once, WithoutQop::Reusable] {
            let expected = Expected {
                method: "MESSAGE",
                request_uri: REQUEST_URI,
                realm: REALM,
                algorithm,
                without_qop,
            };
            let mut counter = NonceCounter::new(4);
            let credential = Credential::Password(PASSWORD);
            let first = issuer.verify(&auth, &expected, credential, NOW_MS, &mut counter);
            if first != AuthOutcome::Ok {
                continue;
            }
            assert_eq!(auth.realm, REALM);
            assert_eq!(auth.algorithm, algorithm);
            let again = issuer.verify(&auth, &expected, credential, NOW_MS, &mut counter);
            if auth.nc.is_none() && without_qop == WithoutQop::Reusable {
                assert_eq!(again, AuthOutcome::Ok);
            } else {
                assert_ne!(again, AuthOutcome::Ok, "replay accepted: {auth:?}");
            }
        }
    }
});
