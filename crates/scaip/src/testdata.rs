//! Shared fixtures for unit tests: a personal trigger's alarm as it arrives on the wire.

/// An `<mrq>` from a personal trigger (dty 0003), button 1 (dco 002), manual alarm.
pub(crate) const MRQ_PERSONAL_TRIGGER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<mrq>
  <ref>A1B2C3</ref>
  <ver>01.00</ver>
  <mty>ME</mty>
  <cid>4600123456</cid>
  <dty>0003</dty>
  <dco>002</dco>
  <crd>gsm:+46701234567</crd>
  <stc>0010</stc>
  <pri>7</pri>
</mrq>
";

/// A SIP MESSAGE over UDP carrying `body`, with a digest Authorization header.
pub(crate) fn scaip_message(body: &str) -> String {
    format!(
        "MESSAGE sip:arc@alarm.vaka.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK4f2a9c77;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:4600123456@alarm.vaka.example>;tag=a73kszlfl\r\n\
To: <sip:arc@alarm.vaka.example>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@10.20.30.40\r\n\
CSeq: 17 MESSAGE\r\n\
Authorization: Digest username=\"4600123456\", realm=\"alarm.vaka.example\",\r\n \
nonce=\"0000018f8a3b2c00a1b2c3d4e5f60718\", uri=\"sip:arc@alarm.vaka.example\",\r\n \
response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
User-Agent: TryggLarm/2.1\r\n\
Content-Type: application/scaip+xml\r\n\
Content-Length: {}\r\n\
\r\n\
{body}",
        body.len()
    )
}
