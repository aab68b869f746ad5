//! API key material: generating a key and hashing it for storage. The key is
//! shown once; only its SHA-256 hash and a short prefix are ever stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Every key starts with this, so a leaked key is recognisable in a scan.
pub const KEY_PREFIX: &str = "hlk_";

/// Random bytes per key: 256 bits, so an unsalted hash cannot be reversed
/// by guessing.
const KEY_BYTES: usize = 32;

/// Characters of the key kept (in clear) to tell keys apart in listings.
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 6;

/// Longest text considered as a key at all (a real one is 47 characters).
const MAX_KEY_LEN: usize = 128;

/// A freshly generated key: the secret to hand out once, and what is stored.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// `hlk_…`: shown once, never stored.
    pub key: String,
    /// SHA-256 of the key, lowercase hex.
    pub hash: String,
    /// The first characters of the key.
    pub prefix: String,
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("could not generate an API key: {0}")]
pub struct KeyError(#[from] getrandom::Error);

/// Generates a new random key.
pub fn generate() -> Result<GeneratedKey, KeyError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(GeneratedKey {
        hash: hash(&key),
        prefix: key.chars().take(SHOWN_CHARS).collect(),
        key,
    })
}

/// The stored form of `key`; `None` for text that cannot be a key (so it is
/// refused without a database lookup).
pub fn hash_presented(key: &str) -> Option<String> {
    (key.starts_with(KEY_PREFIX) && key.len() <= MAX_KEY_LEN).then(|| hash(key))
}

fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(KEY_PREFIX), "{}", a.key);
        assert_eq!(a.key.len(), KEY_PREFIX.len() + 43);
        assert!(a.key.starts_with(&a.prefix));
        assert_eq!(hash_presented(&a.key), Some(a.hash.clone()));
        assert_eq!(a.hash.len(), 64);
        assert_eq!(hash_presented("Bearer nonsense"), None);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // The FIPS 180-2 test vector for "abc".
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
