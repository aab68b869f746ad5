//! A failed attempt's cause: the key an endpoint's failures are grouped by
//! (`http_status 503`, or the error kind and the first line of the error
//! with its numbers and ids normalised away), so a thousand refused
//! connections to one port read as one cause, not a thousand.

/// Causes are cut to this many characters.
pub const MAX_CAUSE_CHARS: usize = 120;

/// What stands for a run of digits or an id in a cause.
const NUMBER: char = '#';

/// The cause of a failure whose error reads `error`, as a delivery's last
/// error and the outcomes summarise it: `http_status 503` as it is, or
/// `kind: message` with the message's first line normalised. A function of
/// that text alone, so a delivery's cause can be told from its last error.
pub fn cause_of(error: &str) -> String {
    let error = first_line(error);
    if error.starts_with("http_status ") {
        return error.to_string();
    }
    match error.split_once(": ") {
        Some((kind, message)) => format!("{kind}: {}", normalise(message.trim())),
        None => normalise(error),
    }
}

/// The first line of `text`, trimmed.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// `text` with every word that carries a digit (a number, a port, an
/// address, an id, a hash) reduced to `#` for its digit runs, and ids and
/// long hex strings to a single `#`; cut to [`MAX_CAUSE_CHARS`].
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            out.push_str(&normalise_word(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&normalise_word(&word));
    let mut cut: String = out.chars().take(MAX_CAUSE_CHARS).collect();
    if out.chars().count() > MAX_CAUSE_CHARS {
        cut.pop();
        cut.push('…');
    }
    cut
}

/// One word: kept when it has no digit; `#` when it is an id or a hex
/// string (it tells one request from another, not one cause from
/// another); otherwise each run of digits becomes `#`.
fn normalise_word(word: &str) -> String {
    if !word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_string();
    }
    let is_hex = word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit());
    let is_id = word.len() >= 16 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_hex || is_id {
        return NUMBER.to_string();
    }
    let mut out = String::with_capacity(word.len());
    let mut in_digits = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push(NUMBER);
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_CAUSE_CHARS, cause_of, normalise};

    #[test]
    fn an_answer_is_its_status_code() {
        assert_eq!(cause_of("http_status 503"), "http_status 503");
    }

    #[test]
    fn numbers_addresses_and_ids_are_normalised_away() {
        let a = cause_of("connect: Connection refused (os error 111) to 127.0.0.1:40127");
        let b = cause_of("connect: Connection refused (os error 111) to 127.0.0.1:51002");
        assert_eq!(a, b);
        assert_eq!(a, "connect: Connection refused (os error #) to #.#.#.#:#");
        assert_eq!(
            normalise("no route for dlv_01M994R57JBGGB5QX4JS7783T6 (trace 9f86d081884c7d65)"),
            "no route for # (trace #)"
        );
        assert_eq!(normalise("HTTP/2 stream 7 reset"), "HTTP/# stream # reset");
    }

    #[test]
    fn only_the_first_line_counts_and_long_ones_are_cut() {
        assert_eq!(
            cause_of("network: reset by peer\nat frame 12"),
            "network: reset by peer"
        );
        let long = format!("network: {}", "x".repeat(400));
        let cause = cause_of(&long);
        assert_eq!(cause.chars().count(), "network: ".len() + MAX_CAUSE_CHARS);
        assert!(cause.ends_with('…'));
        assert_eq!(cause_of("timeout"), "timeout");
    }
}
