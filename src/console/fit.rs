//! Fitting outside text into screen columns: shortened in the middle (a
//! name's distinguishing end stays visible) or wrapped onto several lines.
//! Text is escaped first (see [`crate::text`]), so an escape counts for the
//! columns it takes and is never cut in a way that hides it was there.

use crate::text::{char_width, escape_controls, width};

/// Leaves at least this many columns of a name's start when its last
/// `/`-segment is kept whole.
const MIN_HEAD: usize = 4;

/// `text` as shown, in at most `max` columns: when too long, its start and
/// end with `…` between. The end gets more room (`acme/price-comparison`
/// differs from `acme/price-collector` at the end); its last `/`-segment
/// (or, in a name without one such as a topic, its last `.`-segment) is
/// kept whole if it leaves room for a start.
pub fn shorten_middle(text: &str, max: usize) -> String {
    let text = escape_controls(text);
    if width(&text) <= max {
        return text.into_owned();
    }
    if max <= 1 {
        return "…".repeat(max);
    }
    let room = max - 1;
    let tail_want = match text.rfind('/').or_else(|| text.rfind('.')) {
        Some(at) if width(&text[at..]) + MIN_HEAD <= room => width(&text[at..]),
        _ => room - room / 3,
    };
    let tail = take_end(&text, tail_want);
    let head = take_start(&text, room - width(tail));
    format!("{head}…{tail}")
}

/// The longest start of `text` that fits `max` columns.
fn take_start(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += char_width(c);
        if used > max {
            return &text[..at];
        }
    }
    text
}

/// The longest end of `text` that fits `max` columns.
fn take_end(text: &str, max: usize) -> &str {
    let mut used = 0;
    let mut start = text.len();
    for (at, c) in text.char_indices().rev() {
        used += char_width(c);
        if used > max {
            break;
        }
        start = at;
    }
    &text[start..]
}

/// Already-shown text broken into lines of at most `max` columns, at spaces
/// where it can, inside a word longer than a line where it must. Nothing is
/// dropped: this is how a message too long for one line stays whole.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let gap = usize::from(!line.is_empty());
        if width(&line) + gap + width(word) <= max {
            if gap == 1 {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut rest = word;
        while width(rest) > max {
            let head = take_start(rest, max);
            // A character wider than the whole line still has to go somewhere.
            let head = if head.is_empty() {
                rest.chars().next().map_or(rest, |c| &rest[..c.len_utf8()])
            } else {
                head
            };
            lines.push(head.to_string());
            rest = &rest[head.len()..];
        }
        line.push_str(rest);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::{shorten_middle, wrap};
    use crate::text::width;

    #[test]
    fn a_name_keeps_its_last_segment_and_start() {
        let name = "appliance-catalog/price-comparison";
        assert_eq!(shorten_middle(name, 40), name);
        assert_eq!(shorten_middle(name, 34), name);
        assert_eq!(shorten_middle(name, 28), "appliance-…/price-comparison");
        assert_eq!(width(&shorten_middle(name, 28)), 28);
        // No room for the whole segment: two thirds go to the end.
        assert_eq!(shorten_middle(name, 16), "appli…comparison");
        assert_eq!(width(&shorten_middle(name, 16)), 16);
    }

    #[test]
    fn a_topic_keeps_its_last_segment_and_start() {
        let topic = "product.price_changed";
        assert_eq!(shorten_middle(topic, 19), "prod….price_changed");
        assert_eq!(width(&shorten_middle(topic, 19)), 19);
        // Too narrow for the segment and a start: two thirds to the end.
        assert_eq!(shorten_middle(topic, 16), "produ…ce_changed");
    }

    #[test]
    fn text_without_a_slash_keeps_more_of_its_end() {
        let short = shorten_middle("connect: Connection refused", 13);
        assert_eq!(short, "conn… refused");
        assert_eq!(width(&short), 13);
    }

    #[test]
    fn tiny_widths_give_only_the_ellipsis() {
        assert_eq!(shorten_middle("abcdef", 1), "…");
        assert_eq!(shorten_middle("abcdef", 0), "");
        assert_eq!(shorten_middle("abcdef", 2), "…f");
    }

    #[test]
    fn wide_characters_count_two_and_are_never_split() {
        let name = "東京/価格比較サービス";
        let short = shorten_middle(name, 11);
        assert!(width(&short) <= 11, "{short}");
        assert!(short.contains('…'));
        assert!(short.starts_with('東'), "{short}");
        assert!(short.ends_with("ス"), "{short}");
        // An odd width a wide character cannot fill is left short, not overfull.
        assert_eq!(shorten_middle("東京東京東京", 6), "…東京");
    }

    #[test]
    fn escapes_of_untrusted_text_count_as_shown_and_stay_visible() {
        let hostile = "evil\x1b]52;c;aGk=\x07/receiver";
        let short = shorten_middle(hostile, 16);
        assert!(!short.contains('\x1b'), "no raw ESC: {short:?}");
        assert_eq!(short, r"evil\x…/receiver");
        assert_eq!(width(&short), 16);
        assert_eq!(shorten_middle("a\u{202e}b", 10), r"a\u202eb");
    }

    #[test]
    fn wrapping_keeps_every_word_and_fits_the_width() {
        let message = "retry refused: globex/orders is paused (vendor maintenance until 14:00 UTC)";
        let lines = wrap(message, 30);
        assert!(lines.iter().all(|l| width(l) <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), message);
        assert_eq!(wrap("short", 30), vec!["short"]);
        let long_word = wrap("x".repeat(25).as_str(), 10);
        assert_eq!(
            long_word,
            vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]
        );
        assert_eq!(wrap("東京東京", 3), vec!["東", "京", "東", "京"]);
    }
}
