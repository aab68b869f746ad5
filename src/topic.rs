//! Topic names (`resident.address.updated`) and subscription patterns
//! (`resident.*`, `resident.**`, `*`), with the matching between them.
//!
//! Grammar: a topic is dot-separated segments of `[a-z0-9_-]+`, at most
//! [`MAX_LEN`](crate::topic::MAX_LEN) bytes. A pattern has the same shape,
//! but a segment may be `*` (exactly one segment) and the last one may be
//! `**` (one or more segments).
//! The pattern `*` on its own is special: it matches every topic, whatever its
//! length, because "subscribe to everything" is what operators mean by it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest topic or pattern accepted, in bytes. Long enough for any sensible
/// name, short enough to index and to show on one console line.
pub const MAX_LEN: usize = 255;

/// The first segment of the topics hookline keeps for its own events
/// (`hookline.endpoint.disabled`, `hookline.ping`): producers may subscribe
/// to them but not publish under it.
pub const RESERVED_SEGMENT: &str = "hookline";

/// Why a string is not a valid topic or pattern. Each message names the
/// offending segment (1-based) or character, so the producer can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The input was the empty string.
    #[error("{kind} is empty")]
    Empty {
        /// `"topic"` or `"pattern"`.
        kind: &'static str,
    },
    /// The input is longer than [`MAX_LEN`] bytes.
    #[error("{kind} is {len} bytes long; the limit is {MAX_LEN}")]
    TooLong {
        /// `"topic"` or `"pattern"`.
        kind: &'static str,
        /// Length of the input in bytes.
        len: usize,
    },
    /// The input starts with a dot.
    #[error("empty segment (a dot at the start)")]
    LeadingDot,
    /// Two dots in a row, or a trailing dot.
    #[error("empty segment (two dots in a row or a dot at the end)")]
    EmptySegment,
    /// A segment contains `A`-`Z`.
    #[error("segment {index} \"{segment}\" has uppercase letters; topics are lowercase")]
    Uppercase {
        /// 1-based position of the segment.
        index: usize,
        /// The segment as given.
        segment: String,
    },
    /// A segment contains a character outside `a-z`, `0-9`, `_` and `-`.
    #[error(
        "segment {index} \"{segment}\": character {ch:?} is not allowed (use a-z, 0-9, _ and -)"
    )]
    BadChar {
        /// 1-based position of the segment.
        index: usize,
        /// The segment as given.
        segment: String,
        /// The first offending character.
        ch: char,
    },
    /// A wildcard appeared in a topic; only patterns may have them.
    #[error(
        "segment {index} \"{segment}\": wildcards are only allowed in subscription patterns, not in topics"
    )]
    WildcardInTopic {
        /// 1-based position of the segment.
        index: usize,
        /// The segment as given.
        segment: String,
    },
    /// A `*` mixed with other characters inside one segment, like `res*`.
    #[error("segment {index} \"{segment}\": \"*\" must be a whole segment (like \"resident.*\")")]
    PartialWildcard {
        /// 1-based position of the segment.
        index: usize,
        /// The segment as given.
        segment: String,
    },
    /// `**` somewhere other than the last segment.
    #[error("\"**\" is only allowed as the last segment")]
    DoubleStarNotLast,
}

/// A validated topic name such as `resident.update`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

/// A validated subscription pattern such as `resident.*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicPattern(String);

impl Topic {
    /// Validates `s` as a topic.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        validate(s, Kind::Topic)?;
        Ok(Self(s.to_owned()))
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the topic is under the reserved `hookline.` segment.
    pub fn is_reserved(&self) -> bool {
        self.0.split('.').next() == Some(RESERVED_SEGMENT)
    }
}

/// Why a producer may not publish `topic`, if it may not.
pub fn reserved_reason(topic: &Topic) -> Option<String> {
    topic.is_reserved().then(|| {
        format!(
            "topics under \"{RESERVED_SEGMENT}.\" are reserved for hookline's own events; \
             subscribe to them, publish under another first segment"
        )
    })
}

impl TopicPattern {
    /// Validates `s` as a subscription pattern.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        validate(s, Kind::Pattern)?;
        Ok(Self(s.to_owned()))
    }

    /// The pattern as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `topic` is one this pattern subscribes to.
    pub fn matches(&self, topic: &Topic) -> bool {
        pattern_matches(&self.0, &topic.0)
    }
}

/// Matches an already-validated pattern against an already-validated topic.
///
/// The store calls this for every subscription on every publish, so it walks
/// both strings segment by segment without allocating. Behaviour on strings
/// that did not pass [`TopicPattern::parse`] / [`Topic::parse`] is
/// unspecified (but never panics).
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut pattern_segments = pattern.split('.');
    let mut topic_segments = topic.split('.');
    loop {
        match (pattern_segments.next(), topic_segments.next()) {
            // `**` is last by construction and needs at least one segment.
            (Some("**"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(t)) if p == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topic,
    Pattern,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Topic => "topic",
            Kind::Pattern => "pattern",
        }
    }
}

fn validate(s: &str, kind: Kind) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty { kind: kind.name() });
    }
    if s.len() > MAX_LEN {
        return Err(TopicError::TooLong {
            kind: kind.name(),
            len: s.len(),
        });
    }
    if s.starts_with('.') {
        return Err(TopicError::LeadingDot);
    }
    let segment_count = s.split('.').count();
    for (i, segment) in s.split('.').enumerate() {
        let is_last = i + 1 == segment_count;
        validate_segment(segment, i + 1, is_last, kind)?;
    }
    Ok(())
}

fn validate_segment(
    segment: &str,
    index: usize,
    is_last: bool,
    kind: Kind,
) -> Result<(), TopicError> {
    if segment.is_empty() {
        return Err(TopicError::EmptySegment);
    }
    if segment.contains('*') {
        return validate_wildcard(segment, index, is_last, kind);
    }
    let owned = || segment.to_owned();
    if let Some(ch) = segment.chars().find(|c| !is_allowed(*c)) {
        return Err(if ch.is_ascii_uppercase() {
            TopicError::Uppercase {
                index,
                segment: owned(),
            }
        } else {
            TopicError::BadChar {
                index,
                segment: owned(),
                ch,
            }
        });
    }
    Ok(())
}

fn validate_wildcard(
    segment: &str,
    index: usize,
    is_last: bool,
    kind: Kind,
) -> Result<(), TopicError> {
    let segment_owned = segment.to_owned();
    match (kind, segment) {
        (Kind::Topic, _) => Err(TopicError::WildcardInTopic {
            index,
            segment: segment_owned,
        }),
        (Kind::Pattern, "*") => Ok(()),
        (Kind::Pattern, "**") if is_last => Ok(()),
        (Kind::Pattern, "**") => Err(TopicError::DoubleStarNotLast),
        (Kind::Pattern, _) => Err(TopicError::PartialWildcard {
            index,
            segment: segment_owned,
        }),
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromStr for TopicPattern {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Topic {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(&s, Kind::Topic)?;
        Ok(Self(s))
    }
}

impl TryFrom<String> for TopicPattern {
    type Error = TopicError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        validate(&s, Kind::Pattern)?;
        Ok(Self(s))
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> Self {
        t.0
    }
}

impl From<TopicPattern> for String {
    fn from(p: TopicPattern) -> Self {
        p.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_segment_hookline_is_reserved() {
        for reserved in ["hookline", "hookline.ping", "hookline.endpoint.disabled"] {
            let topic = Topic::parse(reserved).expect("a topic");
            assert!(topic.is_reserved(), "{reserved}");
            assert!(reserved_reason(&topic).is_some_and(|r| r.contains("reserved")));
        }
        for free in [
            "hooklines.ping",
            "my.hookline.ping",
            "hook.line",
            "order.created",
        ] {
            assert!(
                !Topic::parse(free).expect("a topic").is_reserved(),
                "{free}"
            );
        }
        // Subscribing to hookline's own events is what they are for.
        assert!(TopicPattern::parse("hookline.**").is_ok());
    }
    use proptest::prelude::*;

    fn t(s: &str) -> Topic {
        Topic::parse(s).unwrap()
    }

    fn p(s: &str) -> TopicPattern {
        TopicPattern::parse(s).unwrap()
    }

    #[test]
    fn single_star_matches_one_segment() {
        assert!(p("resident.*").matches(&t("resident.update")));
        assert!(!p("resident.*").matches(&t("resident.address.updated")));
        assert!(!p("resident.*").matches(&t("resident")));
    }

    #[test]
    fn double_star_matches_one_or_more_segments() {
        assert!(p("resident.**").matches(&t("resident.update")));
        assert!(p("resident.**").matches(&t("resident.address.updated")));
        assert!(!p("resident.**").matches(&t("resident")));
        assert!(!p("resident.**").matches(&t("residents.update")));
    }

    #[test]
    fn lone_star_matches_everything() {
        for topic in ["a", "resident.update", "a.b.c.d.e"] {
            assert!(p("*").matches(&t(topic)), "{topic}");
        }
    }

    #[test]
    fn middle_star() {
        assert!(p("a.*.c").matches(&t("a.b.c")));
        assert!(!p("a.*.c").matches(&t("a.b.d")));
        assert!(!p("a.*.c").matches(&t("a.c")));
    }

    #[test]
    fn error_messages_say_what_and_where() {
        let msg = |s: &str| Topic::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("resident.Update"),
            "segment 2 \"Update\" has uppercase letters; topics are lowercase"
        );
        assert_eq!(
            msg("a..b"),
            "empty segment (two dots in a row or a dot at the end)"
        );
        assert_eq!(
            msg("a.b."),
            "empty segment (two dots in a row or a dot at the end)"
        );
        assert_eq!(msg(".a"), "empty segment (a dot at the start)");
        assert!(msg("a/b").contains("character '/' is not allowed (use a-z, 0-9, _ and -)"));
        assert!(msg("a.*").contains("only allowed in subscription patterns"));
        assert_eq!(msg(""), "topic is empty");
        assert!(msg(&"a".repeat(256)).contains("256 bytes"));
        let pmsg = |s: &str| TopicPattern::parse(s).unwrap_err().to_string();
        assert_eq!(pmsg("a.**.b"), "\"**\" is only allowed as the last segment");
        assert!(pmsg("res*.x").contains("segment 1 \"res*\""));
    }

    #[test]
    fn valid_edge_cases() {
        assert!(Topic::parse(&"a".repeat(MAX_LEN)).is_ok());
        assert!(Topic::parse("a_b-c.0-9").is_ok());
        assert!(TopicPattern::parse("**").is_ok());
        assert!(TopicPattern::parse("*.*").is_ok());
        assert!(TopicPattern::parse("*.**").is_ok());
        assert!(TopicPattern::parse("***").is_err());
    }

    #[test]
    fn serde_uses_strings_and_validates() {
        let json = serde_json::to_string(&p("resident.*")).unwrap();
        assert_eq!(json, "\"resident.*\"");
        assert_eq!(
            serde_json::from_str::<TopicPattern>(&json).unwrap(),
            p("resident.*")
        );
        assert!(serde_json::from_str::<Topic>("\"Bad\"").is_err());
    }

    // ---- property tests ----

    fn segment() -> impl Strategy<Value = String> {
        // A tiny alphabet so random patterns and topics often match.
        prop_oneof![
            3 => "[ab]{1,2}",
            1 => "[a-z0-9_-]{1,6}",
        ]
    }

    fn topic_segments() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(segment(), 1..6)
    }

    fn pattern_segments() -> impl Strategy<Value = Vec<String>> {
        let seg = prop_oneof![2 => segment(), 1 => Just("*".to_owned())];
        (prop::collection::vec(seg, 1..5), any::<bool>()).prop_map(|(mut segs, open)| {
            if open {
                segs.push("**".to_owned());
            }
            segs
        })
    }

    /// The reference matcher: compares lengths first, then zips segments.
    /// Written without the iterator walk of `pattern_matches` on purpose.
    fn reference_matches(pattern: &[String], topic: &[String]) -> bool {
        if pattern.len() == 1 && pattern[0] == "*" {
            return true;
        }
        let (fixed, open) = match pattern.split_last() {
            Some((last, rest)) if last == "**" => (rest, true),
            _ => (pattern, false),
        };
        let length_ok = if open {
            topic.len() > fixed.len()
        } else {
            topic.len() == fixed.len()
        };
        length_ok && fixed.iter().zip(topic).all(|(p, t)| p == "*" || p == t)
    }

    /// The reference validator: a byte-level state machine instead of split.
    fn reference_valid_topic(s: &str) -> bool {
        let mut prev_dot = true;
        for b in s.bytes() {
            match b {
                b'.' if prev_dot => return false,
                b'.' => prev_dot = true,
                b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => prev_dot = false,
                _ => return false,
            }
        }
        !prev_dot && s.len() <= MAX_LEN
    }

    proptest! {
        #[test]
        fn matching_agrees_with_reference(ps in pattern_segments(), ts in topic_segments()) {
            let pattern = p(&ps.join("."));
            let topic = t(&ts.join("."));
            prop_assert_eq!(pattern.matches(&topic), reference_matches(&ps, &ts));
        }

        #[test]
        fn every_topic_matches_lone_star(ts in topic_segments()) {
            prop_assert!(p("*").matches(&t(&ts.join("."))));
        }

        #[test]
        fn exact_pattern_matches_only_itself(a in topic_segments(), b in topic_segments()) {
            let (a, b) = (a.join("."), b.join("."));
            prop_assert_eq!(p(&a).matches(&t(&b)), a == b);
            prop_assert!(p(&a).matches(&t(&a)));
        }

        #[test]
        fn a_double_star_is_prefix_with_two_or_more_segments(ts in topic_segments()) {
            let topic = ts.join(".");
            let expected = topic.starts_with("a.") && ts.len() >= 2;
            prop_assert_eq!(p("a.**").matches(&t(&topic)), expected);
        }

        #[test]
        fn display_parse_round_trip(ts in topic_segments(), ps in pattern_segments()) {
            let topic = t(&ts.join("."));
            prop_assert_eq!(Topic::parse(&topic.to_string()).unwrap(), topic);
            let pattern = p(&ps.join("."));
            prop_assert_eq!(TopicPattern::parse(&pattern.to_string()).unwrap(), pattern);
        }

        #[test]
        fn validity_agrees_with_reference(s in "[a-zA-Z0-9_.*/ é-]{0,12}") {
            prop_assert_eq!(Topic::parse(&s).is_ok(), reference_valid_topic(&s), "{:?}", s);
        }

        #[test]
        fn corrupted_topics_are_refused(
            ts in topic_segments(),
            bad in prop::sample::select(vec!["A", "/", " ", "*", "é", "..", "\n"]),
            at in any::<prop::sample::Index>(),
        ) {
            let mut topic = ts.join(".");
            let pos = at.index(topic.len() + 1);
            topic.insert_str(pos, bad);
            prop_assert!(Topic::parse(&topic).is_err(), "{:?}", topic);
            let trailing = format!("{topic}.");
            let leading = format!(".{topic}");
            prop_assert!(Topic::parse(&trailing).is_err());
            prop_assert!(Topic::parse(&leading).is_err());
        }

        #[test]
        fn double_star_not_last_is_refused(ps in pattern_segments(), rest in topic_segments()) {
            let pattern = format!("{}.**.{}", ps.join("."), rest.join("."));
            prop_assert!(TopicPattern::parse(&pattern).is_err());
        }
    }
}
