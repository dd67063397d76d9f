//! CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor), the check DC-09 inherits
//! from DC-07. It covers the bytes from the opening `"` of the ID token to just before `CR`.

/// CRC-16/ARC of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::crc16;

    #[test]
    fn check_value_of_the_catalogue() {
        // The CRC catalogue's check value for CRC-16/ARC over "123456789".
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn reference_frames() {
        // From protocols.md (fioletoven/dc09 message.tests.rs), CRC field recomputed there.
        assert_eq!(
            crc16(br#""SIA-DCS"0001RF3L77#1234[#1234|NRR|Atest]"#),
            0xF4D2
        );
        assert_eq!(crc16(br#""SIA-DCS"0001L0#1234[]"#), 0x96ED);
        assert_eq!(crc16(br#""NAK"0000R0L0A0[]_16:20:01,09-24-2025"#), 0xE441);
    }
}
