//! AES-CBC as DC-09 uses it: all-zero IV, no cipher padding mode (the sender aligns the
//! plaintext to 16 bytes with its own pad characters), key of 16, 24 or 32 bytes per account.
//! Because the IV is fixed, the random pad at the front is what makes two encryptions of the
//! same message differ; callers pass that randomness in (sans-I/O: no RNG here).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use std::fmt;

const BLOCK: usize = 16;
const IV: [u8; BLOCK] = [0; BLOCK];

/// An account's AES key: 16, 24 or 32 bytes (AES-128, -192, -256).
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 16, 24 or 32 bytes.
    #[error("AES key must be 16, 24 or 32 bytes, not {0}")]
    Length(usize),
    /// Hex text with a character that is not a hex digit.
    #[error("AES key in hex has a non-hex character")]
    NotHex,
}

impl fmt::Debug for Key {
    // Never print key material into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(AES-{})", self.0.len() * 8)
    }
}

impl Key {
    /// A key from its raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, KeyError> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Key(bytes.to_vec())),
            n => Err(KeyError::Length(n)),
        }
    }

    /// A key written as hex digits (32, 48 or 64 of them, either case).
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?;
        Key::from_bytes(&bytes)
    }

    /// A key entered as ASCII text, its bytes used as they are (16, 24 or 32 characters).
    pub fn from_ascii(text: &str) -> Result<Key, KeyError> {
        Key::from_bytes(text.as_bytes())
    }

    /// A key as panel set-up screens show it: vendors differ (Hikvision shows 32 hex digits for
    /// AES-128, others take 16 ASCII characters). 32, 48 or 64 hex digits are read as hex;
    /// anything else as ASCII. A 32-character ASCII key made only of hex digits would be read as
    /// hex: use [`Key::from_ascii`] when the configuration says which it is.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let t = text.trim();
        if matches!(t.len(), 32 | 48 | 64) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Key::from_hex(t)
        } else {
            Key::from_ascii(t)
        }
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a key is 16, 24 or 32 bytes (here for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encrypt `plain`, whose length must be a multiple of 16 (the caller pads).
    pub(crate) fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        debug_assert_eq!(plain.len() % BLOCK, 0);
        let mut buf = plain.to_vec();
        let n = buf.len();
        // Length is checked by construction; the keys' lengths by `from_bytes`.
        macro_rules! enc {
            ($aes:ty) => {
                cbc::Encryptor::<$aes>::new_from_slices(&self.0, &IV)
                    .expect("key and IV lengths checked")
                    .encrypt_padded_mut::<NoPad>(&mut buf, n)
                    .map(|c| c.len())
                    .expect("aligned by the caller")
            };
        }
        let _ = match self.0.len() {
            16 => enc!(aes::Aes128),
            24 => enc!(aes::Aes192),
            _ => enc!(aes::Aes256),
        };
        buf
    }

    /// Decrypt `cipher`; `None` when its length is not a non-zero multiple of 16.
    pub(crate) fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.is_empty() || !cipher.len().is_multiple_of(BLOCK) {
            return None;
        }
        let mut buf = cipher.to_vec();
        macro_rules! dec {
            ($aes:ty) => {
                cbc::Decryptor::<$aes>::new_from_slices(&self.0, &IV)
                    .ok()?
                    .decrypt_padded_mut::<NoPad>(&mut buf)
                    .ok()
                    .map(|p| p.len())
            };
        }
        let len = match self.0.len() {
            16 => dec!(aes::Aes128),
            24 => dec!(aes::Aes192),
            _ => dec!(aes::Aes256),
        }?;
        buf.truncate(len);
        Some(buf)
    }
}

use aes::cipher::block_padding::NoPadding as NoPad;

/// Characters a pad may use: DC-09 forbids `[`, `]` and `|` in the pad; letters and digits
/// keep it printable for anyone reading a decrypted message.
const PAD_ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Build `pad | body` aligned to 16 bytes, pad characters drawn from `entropy`. The pad is
/// 1..=16 characters: DC-09 requires padding on every encrypted message.
pub(crate) fn padded(body: &[u8], entropy: &[u8; BLOCK]) -> Vec<u8> {
    let unpadded = body.len() + 1;
    let pad = match unpadded % BLOCK {
        0 => BLOCK,
        r => BLOCK - r,
    };
    let mut out = Vec::with_capacity(unpadded + pad);
    out.extend(
        entropy[..pad]
            .iter()
            .map(|b| PAD_ALPHABET[usize::from(*b) % PAD_ALPHABET.len()]),
    );
    out.push(b'|');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_forms() {
        assert_eq!(Key::parse("0123456789abcdef").unwrap().len(), 16);
        let hex = Key::parse("000102030405060708090A0B0C0D0E0F").unwrap();
        assert_eq!(
            hex,
            Key::from_bytes(&(0u8..16).collect::<Vec<_>>()).unwrap()
        );
        assert_eq!(Key::parse(&"ab".repeat(24)).unwrap().len(), 24);
        assert_eq!(Key::parse(&"ab".repeat(32)).unwrap().len(), 32);
        assert_eq!(
            Key::parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345")
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            Key::from_ascii("00112233445566778899AABBCCDDEEFF")
                .unwrap()
                .len(),
            32
        );
        assert_eq!(Key::parse("short"), Err(KeyError::Length(5)));
        assert_eq!(Key::from_hex("zz"), Err(KeyError::NotHex));
        assert_eq!(Key::from_hex("0011"), Err(KeyError::Length(2)));
        assert_eq!(format!("{:?}", hex), "Key(AES-128)");
    }

    #[test]
    fn nist_cbc_vector_aes128() {
        // NIST SP 800-38A F.2.1 first block with IV 0 differs from the NIST IV, so check the
        // first block against plain AES-128 (ECB of block 1 = CBC with zero IV).
        let key = Key::from_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let plain = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let c = key.encrypt(&plain);
        assert_eq!(hex::encode(&c), "3ad77bb40d7a3660a89ecaf32466ef97");
        assert_eq!(key.decrypt(&c).unwrap(), plain);
    }

    #[test]
    fn round_trip_every_key_size() {
        for n in [16, 24, 32] {
            let key = Key::from_bytes(&vec![7u8; n]).unwrap();
            let plain = padded(b"#1234|NRP]_00:00:00,01-01-2026", &[3; 16]);
            assert_eq!(plain.len() % 16, 0);
            let c = key.encrypt(&plain);
            assert_ne!(c, plain);
            assert_eq!(key.decrypt(&c).unwrap(), plain);
        }
    }

    #[test]
    fn decrypt_refuses_unaligned() {
        let key = Key::from_bytes(&[1; 16]).unwrap();
        assert_eq!(key.decrypt(&[]), None);
        assert_eq!(key.decrypt(&[0; 17]), None);
    }

    #[test]
    fn pad_is_one_to_sixteen_and_never_a_delimiter() {
        for len in 0..64 {
            let p = padded(
                &vec![b'x'; len],
                &[b'[', b']', b'|', 255, 0, 61, 62, 9, 1, 2, 3, 4, 5, 6, 7, 8],
            );
            assert_eq!(p.len() % 16, 0);
            let pad = p.len() - len - 1;
            assert!((1..=16).contains(&pad), "{len}: {pad}");
            assert_eq!(p[pad], b'|');
            assert!(p[..pad].iter().all(u8::is_ascii_alphanumeric));
        }
    }
}
