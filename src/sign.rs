//! Standard Webhooks signatures and the `whsec_…` signing secrets behind them.
//!
//! The signed content is `"{msg_id}.{timestamp}.{body}"`, MACed with
//! HMAC-SHA256 and sent as `v1,<base64>` in the `webhook-signature` header.
//! Several signatures may share that header, separated by spaces, so an
//! endpoint rotating its secret accepts either the new or the old one.

use std::fmt;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying the message id (stable across retries, for deduplication).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the Unix timestamp (seconds) the signature was made at.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Clock skew the spec's reference verifiers accept, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Prefix that marks a Standard Webhooks secret.
const PREFIX: &str = "whsec_";
/// Shorter keys are too weak to be worth accepting.
const MIN_KEY_LEN: usize = 24;
/// The spec's upper bound; longer keys only hash down to the block size.
const MAX_KEY_LEN: usize = 64;
/// Bytes of a freshly generated key.
const GENERATED_KEY_LEN: usize = 32;

/// Secrets copied from other systems are sometimes stripped of their `=`
/// padding; the key is the same either way, so accept both.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// Why a string is not a usable signing secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The string does not start with `whsec_`.
    #[error("secret must start with \"whsec_\"")]
    MissingPrefix,
    /// The part after `whsec_` is not base64.
    #[error("secret is not valid base64 after \"whsec_\": {0}")]
    Base64(#[source] base64::DecodeError),
    /// The decoded key is shorter than 24 bytes.
    #[error("secret key is {len} bytes; it must be at least {MIN_KEY_LEN}")]
    TooShort {
        /// Decoded key length in bytes.
        len: usize,
    },
    /// The decoded key is longer than 64 bytes.
    #[error("secret key is {len} bytes; it must be at most {MAX_KEY_LEN}")]
    TooLong {
        /// Decoded key length in bytes.
        len: usize,
    },
    /// The operating system could not provide random bytes.
    #[error("cannot generate a secret: no randomness from the operating system: {0}")]
    Random(#[source] getrandom::Error),
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No message id was given.
    #[error("missing webhook-id")]
    MissingId,
    /// No timestamp was given.
    #[error("missing webhook-timestamp")]
    MissingTimestamp,
    /// The timestamp is not an integer number of seconds.
    #[error("webhook-timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// The timestamp is further in the past than the tolerance allows.
    #[error("webhook-timestamp is {age_secs}s old; the limit is {tolerance_secs}s")]
    TooOld {
        /// How far in the past, in seconds.
        age_secs: i64,
        /// The tolerance that was exceeded.
        tolerance_secs: i64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error("webhook-timestamp is {ahead_secs}s in the future; the limit is {tolerance_secs}s")]
    TooNew {
        /// How far in the future, in seconds.
        ahead_secs: i64,
        /// The tolerance that was exceeded.
        tolerance_secs: i64,
    },
    /// The header holds no `v1,` entry at all.
    #[error("no v1 signature in webhook-signature")]
    NoV1Signature,
    /// The verifier was given no secret to check with.
    #[error("no secret configured to verify with")]
    NoSecrets,
    /// There were `v1,` signatures but none matched any secret.
    #[error("no signature matched")]
    NoMatch,
}

/// An endpoint's signing key: raw bytes, shown to people only as
/// [`Secret::masked`] (its `Debug` is masked too, so it cannot leak in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// Parses `whsec_<base64>`; the key must decode to 24..=64 bytes.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT_BASE64
            .decode(encoded)
            .map_err(SecretError::Base64)?;
        Self::from_bytes(key)
    }

    /// Wraps raw key bytes, checking the same length bounds as [`Secret::parse`].
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, SecretError> {
        match key.len() {
            len if len < MIN_KEY_LEN => Err(SecretError::TooShort { len }),
            len if len > MAX_KEY_LEN => Err(SecretError::TooLong { len }),
            _ => Ok(Self { key }),
        }
    }

    /// A new secret of 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        getrandom::fill(&mut key).map_err(SecretError::Random)?;
        Ok(Self { key })
    }

    /// `whsec_` plus the first 4 and last 3 characters of the base64 part:
    /// enough for an operator to tell two secrets apart, useless to an attacker.
    pub fn masked(&self) -> String {
        let encoded = STANDARD.encode(&self.key);
        // Base64 output is ASCII, so byte slicing is on char boundaries; a
        // 24-byte minimum key gives 32 chars, so the two ends never overlap.
        let head = &encoded[..4];
        let tail = &encoded[encoded.len() - 3..];
        format!("{PREFIX}{head}…{tail}")
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 accepts keys of any length") // ok: HMAC takes a key of any length, so this cannot fail
    }
}

impl fmt::Display for Secret {
    /// The full `whsec_…` form, for storing and handing to the endpoint owner.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD.encode(&self.key))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The MAC over `"{msg_id}.{timestamp}.{body}"`, ready to finalize or verify.
fn signed_content_mac(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = secret.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `v1,<base64 HMAC-SHA256>`, for the given message.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_content_mac(secret, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one signature per secret, joined by
/// a single space, so a receiver holding either key during rotation accepts.
pub fn signature_header(secrets: &[&Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a received message: the timestamp must be within `tolerance_secs`
/// of `now_unix`, and some `v1` signature in `header` must match some secret.
///
/// Comparison is constant-time (`verify_slice`), so timing reveals nothing
/// about how close a forged signature came.
pub fn verify(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if msg_id.is_empty() {
        return Err(VerifyError::MissingId);
    }
    let timestamp = check_timestamp(timestamp, now_unix, tolerance_secs)?;
    let signatures = v1_signatures(header);
    if signatures.is_empty() {
        return Err(VerifyError::NoV1Signature);
    }
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let matched = secrets.iter().any(|secret| {
        let mac = signed_content_mac(secret, msg_id, timestamp, body);
        signatures
            .iter()
            .flatten()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Parses the timestamp and checks it against the clock. Signing uses the
/// parsed integer, as the spec's reference libraries do.
fn check_timestamp(
    timestamp: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, VerifyError> {
    if timestamp.is_empty() {
        return Err(VerifyError::MissingTimestamp);
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    // Saturating: a hostile timestamp near i64::MIN must not overflow.
    let age_secs = now_unix.saturating_sub(ts);
    if age_secs > tolerance_secs {
        return Err(VerifyError::TooOld {
            age_secs,
            tolerance_secs,
        });
    }
    let ahead_secs = ts.saturating_sub(now_unix);
    if ahead_secs > tolerance_secs {
        return Err(VerifyError::TooNew {
            ahead_secs,
            tolerance_secs,
        });
    }
    Ok(ts)
}

/// Decoded `v1` signatures from the header. An entry that fails to decode
/// stays as `None`: it still proves the sender meant `v1`, it just can't match.
fn v1_signatures(header: &str) -> Vec<Option<Vec<u8>>> {
    header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .map(|encoded| STANDARD.decode(encoded).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        Secret::parse(SECRET).unwrap()
    }

    fn check(secrets: &[&Secret], id: &str, body: &[u8], header: &str) -> Result<(), VerifyError> {
        verify(secrets, id, &TS.to_string(), body, header, TS + 10, 300)
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(sign(&secret(), ID, TS, BODY), EXPECTED);
    }

    #[test]
    fn verify_accepts_the_spec_vector() {
        assert_eq!(check(&[&secret()], ID, BODY, EXPECTED), Ok(()));
    }

    #[test]
    fn verify_rejects_tampering() {
        let s = secret();
        let mut body = BODY.to_vec();
        body[3] ^= 1;
        assert_eq!(check(&[&s], ID, &body, EXPECTED), Err(VerifyError::NoMatch));
        assert_eq!(
            check(&[&s], "msg_other", BODY, EXPECTED),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(&[&s], ID, BODY, "v1,Zm9v v2,abc"),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            check(&[&s], ID, BODY, "v1a,abc"),
            Err(VerifyError::NoV1Signature)
        );
        assert_eq!(check(&[], ID, BODY, EXPECTED), Err(VerifyError::NoSecrets));
        assert_eq!(
            check(&[&s], "", BODY, EXPECTED),
            Err(VerifyError::MissingId)
        );
    }

    #[test]
    fn verify_checks_the_timestamp() {
        let s = secret();
        let stale = verify(&[&s], ID, &TS.to_string(), BODY, EXPECTED, TS + 301, 300);
        assert!(matches!(
            stale,
            Err(VerifyError::TooOld { age_secs: 301, .. })
        ));
        let early = verify(&[&s], ID, &TS.to_string(), BODY, EXPECTED, TS - 301, 300);
        assert!(matches!(early, Err(VerifyError::TooNew { .. })));
        let missing = verify(&[&s], ID, "", BODY, EXPECTED, TS, 300);
        assert_eq!(missing, Err(VerifyError::MissingTimestamp));
        let junk = verify(&[&s], ID, "soon", BODY, EXPECTED, TS, 300);
        assert!(matches!(junk, Err(VerifyError::BadTimestamp(_))));
        let extreme = verify(&[&s], ID, &i64::MIN.to_string(), BODY, EXPECTED, TS, 300);
        assert!(matches!(extreme, Err(VerifyError::TooOld { .. })));
    }

    #[test]
    fn rotation_header_verifies_with_either_secret() {
        let old = secret();
        let new = Secret::generate().unwrap();
        let header = signature_header(&[&new, &old], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(check(&[&old], ID, BODY, &header), Ok(()));
        assert_eq!(check(&[&new], ID, BODY, &header), Ok(()));
        let stranger = Secret::generate().unwrap();
        assert_eq!(
            check(&[&stranger], ID, BODY, &header),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn generate_parse_round_trip() {
        let s = Secret::generate().unwrap();
        let text = s.to_string();
        assert!(text.starts_with("whsec_"));
        assert_eq!(Secret::parse(&text).unwrap(), s);
        assert_eq!(secret().to_string(), SECRET);
    }

    #[test]
    fn parse_errors_say_which() {
        assert!(matches!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        ));
        assert!(matches!(
            Secret::parse("whsec_!!!notbase64"),
            Err(SecretError::Base64(_))
        ));
        assert!(matches!(
            Secret::parse("whsec_c2hvcnQ="),
            Err(SecretError::TooShort { len: 5 })
        ));
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert!(matches!(
            Secret::parse(&long),
            Err(SecretError::TooLong { len: 65 })
        ));
        let unpadded = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode([7u8; 32])
        );
        assert!(Secret::parse(&unpadded).is_ok());
    }

    #[test]
    fn masked_and_debug_never_show_the_key() {
        let s = secret();
        assert_eq!(s.masked(), "whsec_MfKQ…aSw");
        assert!(!s.masked().contains(&SECRET[6..]));
        let debug = format!("{s:?}");
        assert!(!debug.contains(&SECRET[6..]));
        for _ in 0..20 {
            let g = Secret::generate().unwrap();
            let full = g.to_string();
            assert!(!g.masked().contains(&full[6..]));
            assert!(!format!("{g:?}").contains(&full[6..]));
        }
    }
}
