//! Encryption at rest of the values an endpoint sends: signing secrets, URL
//! passwords and sensitive header values, sealed with `[secrets] key`.
//!
//! A sealed value reads `enc:v1:` followed by the base64url of a random
//! 96-bit nonce and the ChaCha20-Poly1305 ciphertext with its tag. The
//! prefix keeps values written before a key was set readable (they are
//! plain), and makes a sealed value read without the key a clear error
//! rather than something sent to a receiver. Each value is bound to where
//! it belongs (its endpoint and field, as associated data), so a sealed
//! value copied to another endpoint or field does not open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// What every sealed value starts with; the version names the algorithm.
pub const PREFIX: &str = "enc:v1:";

/// Length of a secrets key in bytes.
pub const KEY_LEN: usize = 32;

/// The key that seals endpoint secrets in the database (`[secrets] key`).
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretsKey([u8; KEY_LEN]);

/// Why a key could not be read, or a value not sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The configured key is not base64 of 32 bytes.
    #[error(
        "must be the base64 of {KEY_LEN} random bytes (make one with `openssl rand -base64 32`); {0}"
    )]
    BadKey(String),
    /// A sealed value, and no key to open it with.
    #[error(
        "it is encrypted, and no [secrets] key is set: set the key it was written with ([secrets] key or HOOKLINE_SECRETS_KEY)"
    )]
    NoKey,
    /// A sealed value that the configured key does not open.
    #[error(
        "it does not decrypt with the configured [secrets] key: the key differs from the one it was written with, or the value was altered"
    )]
    WrongKey,
    /// A value with the prefix and a body hookline cannot have written.
    #[error("it starts with {PREFIX} but is not a value hookline sealed")]
    Malformed,
    /// The operating system gave no randomness for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

impl SecretsKey {
    /// Reads a key from its base64 form (standard alphabet, padding
    /// optional), which must decode to exactly 32 bytes.
    pub fn parse(text: &str) -> Result<SecretsKey, SealError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SealError::BadKey("it is not valid base64".to_string()))?;
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey(format!("it decodes to {} bytes", bytes.len())))?;
        Ok(SecretsKey(key))
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        // ChaCha20-Poly1305 takes any 32 bytes, which is all a SecretsKey
        // holds, so this never fails in practice.
        UnboundKey::new(&CHACHA20_POLY1305, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| SealError::BadKey(format!("not a {KEY_LEN}-byte key")))
    }
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey(****)")
    }
}

/// Whether `value` is sealed (rather than stored plain).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Seals `plain` for the place `context` names (e.g. `ep_…/secret`).
pub fn seal(key: &SecretsKey, context: &str, plain: &str) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
    let mut body = plain.as_bytes().to_vec();
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut body,
        )
        .map_err(|_| SealError::Malformed)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// The plain value of `stored`: unchanged when it is not sealed (written
/// before a key was set), opened with `key` when it is.
pub fn open(key: Option<&SecretsKey>, context: &str, stored: &str) -> Result<String, SealError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_string());
    };
    let key = key.ok_or(SealError::NoKey)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| SealError::Malformed)?;
    if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
        return Err(SealError::Malformed);
    }
    let (nonce, body) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
    let mut body = body.to_vec();
    let plain = key
        .aead()?
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
        .map_err(|_| SealError::WrongKey)?;
    String::from_utf8(plain.to_vec()).map_err(|_| SealError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretsKey {
        SecretsKey([byte; KEY_LEN])
    }

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let sealed = seal(&key(1), "ep_1/secret", "whsec_abc").unwrap();
        assert!(
            is_sealed(&sealed) && !sealed.contains("whsec_abc"),
            "{sealed}"
        );
        assert_eq!(
            open(Some(&key(1)), "ep_1/secret", &sealed).unwrap(),
            "whsec_abc"
        );
        assert_eq!(
            open(Some(&key(2)), "ep_1/secret", &sealed),
            Err(SealError::WrongKey)
        );
        assert_eq!(
            open(Some(&key(1)), "ep_2/secret", &sealed),
            Err(SealError::WrongKey),
            "bound to its endpoint and field"
        );
        assert_eq!(open(None, "ep_1/secret", &sealed), Err(SealError::NoKey));
        // A fresh nonce each time: the same value never seals the same way.
        assert_ne!(
            seal(&key(1), "c", "x").unwrap(),
            seal(&key(1), "c", "x").unwrap()
        );
    }

    #[test]
    fn plain_values_read_as_they_are_and_broken_ones_are_errors() {
        assert_eq!(open(None, "c", "whsec_plain").unwrap(), "whsec_plain");
        assert_eq!(open(Some(&key(1)), "c", "s3cret").unwrap(), "s3cret");
        for broken in ["enc:v1:", "enc:v1:!!!", "enc:v1:AAAA"] {
            assert_eq!(open(Some(&key(1)), "c", broken), Err(SealError::Malformed));
        }
        // A sealed value fits in a URL's userinfo as it is.
        let sealed = seal(&key(1), "c", "p@ss:word/").unwrap();
        assert!(
            sealed[PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn keys_are_base64_of_32_bytes_and_never_shown() {
        let text = STANDARD.encode([7u8; KEY_LEN]);
        let parsed = SecretsKey::parse(&text).unwrap();
        assert_eq!(parsed, key(7));
        assert_eq!(format!("{parsed:?}"), "SecretsKey(****)");
        let short = SecretsKey::parse(&STANDARD.encode([7u8; 16])).unwrap_err();
        assert!(short.to_string().contains("decodes to 16 bytes"), "{short}");
        let junk = SecretsKey::parse("not base64!").unwrap_err();
        assert!(
            junk.to_string().contains("openssl rand -base64 32"),
            "{junk}"
        );
    }
}
