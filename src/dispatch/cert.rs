//! The few facts a probe shows of a TLS certificate (subject, issuer,
//! expiry), read from its DER by walking just the fields it needs. Bytes
//! that do not parse give `None`, never a panic.

use chrono::NaiveDate;

/// What a probe says about the receiver's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject's common name (or organisation, without one).
    pub subject: String,
    pub issuer: String,
    /// When it stops being valid (unix ms).
    pub not_after_ms: i64,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` of a v3 certificate.
const VERSION: u8 = 0xa0;
/// 2.5.4.3, commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.4.10, organizationName.
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// The facts of the DER certificate `der`.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (tag, certificate, _) = tlv(der)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = tlv(certificate)?;
    expect(tag, SEQUENCE)?;
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == VERSION {
        // Then the serial number.
        (_, _, rest) = tlv(rest)?;
    }
    let (_, _, rest) = tlv(rest)?; // the signature algorithm
    let (tag, issuer, rest) = tlv(rest)?;
    expect(tag, SEQUENCE)?;
    let (tag, validity, rest) = tlv(rest)?;
    expect(tag, SEQUENCE)?;
    let (tag, subject, _) = tlv(rest)?;
    expect(tag, SEQUENCE)?;
    let (_, _, after) = tlv(validity)?; // not before
    let (tag, not_after, _) = tlv(after)?;
    Some(CertFacts {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_after_ms: time(tag, not_after)?,
    })
}

fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

/// One DER element: its tag, its contents and what follows it.
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// A Name's common name, or its organisation without one.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut organisation = None;
    while !rdns.is_empty() {
        let (tag, set, rest) = tlv(rdns)?;
        expect(tag, SET)?;
        rdns = rest;
        let (_, attribute, _) = tlv(set)?;
        let (tag, oid, value) = tlv(attribute)?;
        expect(tag, OID)?;
        let (_, text, _) = tlv(value)?;
        let text = String::from_utf8_lossy(text).into_owned();
        if oid == COMMON_NAME {
            return Some(text);
        }
        if oid == ORGANIZATION {
            organisation = Some(text);
        }
    }
    organisation.or_else(|| Some(String::new()))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as unix ms.
fn time(tag: u8, bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (year, rest) = match tag {
        UTC_TIME => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let part = |at: usize| -> Option<u32> { rest.get(at..at + 2)?.parse().ok() };
    let at = NaiveDate::from_ymd_opt(year, part(0)?, part(2)?)?.and_hms_opt(
        part(4)?,
        part(6)?,
        part(8)?,
    )?;
    Some(at.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::facts;

    /// A self-signed certificate made with `openssl req -x509 -subj
    /// /O=Example Receivers/CN=hooks.example.com -days 30`.
    const CERT: &str = include_str!("cert_test.b64");

    #[test]
    fn subject_issuer_and_expiry_are_read() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(CERT.trim())
            .expect("the fixture is base64");
        let facts = facts(&der).expect("parses");
        assert_eq!(facts.subject, "hooks.example.com");
        assert_eq!(facts.issuer, "hooks.example.com");
        assert_eq!(
            Some(facts.not_after_ms),
            crate::model::parse_rfc3339(include_str!("cert_test.not_after").trim())
        );
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for bytes in [
            &b""[..],
            &[0x30][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x02, 0x30, 0x05][..],
        ] {
            assert_eq!(facts(bytes), None);
        }
    }
}
