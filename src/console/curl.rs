//! A delivery as a `curl` command to paste into a shell: the endpoint's
//! URL and the headers its last attempt sent (secrets masked, as stored),
//! and the payload's exact bytes. Every value is quoted for the shell so
//! that nothing in it runs or drives the terminal it is pasted into: text
//! with a control or bidi character is written as `$'…'` with escapes.

use crate::model::DeliveryState;
use crate::store::DeliveryDetail;

/// The command for `detail`, sent to `url` (its password masked by the caller).
pub fn curl_command(detail: &DeliveryDetail, url: &str) -> String {
    let mut lines = vec![format!("curl -X POST {}", quote(url))];
    match detail.attempts.last() {
        Some(attempt) => {
            for (name, value) in &attempt.request_headers {
                lines.push(format!("-H {}", quote(&format!("{name}: {value}"))));
            }
        }
        None => {
            lines.push(format!("-H {}", quote("content-type: application/json")));
            lines.push(format!(
                "-H {}",
                quote(&format!("webhook-id: {}", detail.event.id))
            ));
        }
    }
    let payload = match &detail.event.payload_removed {
        Some(removal) => {
            return format!(
                "# {}: its payload is {} and cannot be sent again",
                detail.delivery.id,
                removal.by.describe()
            );
        }
        None => &detail.event.payload,
    };
    lines.push(format!("--data-binary {}", quote(payload)));
    let mut command = lines.join(" \\\n  ");
    if detail.delivery.state == DeliveryState::Pending && detail.attempts.is_empty() {
        command.push_str(
            "\n# not sent yet: webhook-timestamp and webhook-signature are made for each attempt",
        );
    }
    command
}

/// `text` quoted for a POSIX shell: `'…'` when every character is plain,
/// else bash's `$'…'` with controls, bidi characters and line breaks
/// escaped, so pasting it can neither end the paste early nor run anything.
pub fn quote(text: &str) -> String {
    if text.chars().all(is_plain) {
        return format!("'{}'", text.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            c if (c as u32) < 0x80 && !is_plain(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !is_plain(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Printable and harmless: no control (C0, DEL, C1), no bidi control or
/// line separator.
fn is_plain(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn plain_text_is_single_quoted_with_quotes_escaped() {
        assert_eq!(quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    }

    #[test]
    fn controls_and_bidi_characters_are_escaped_so_a_paste_cannot_run_anything() {
        let hostile = "x\x1b[201~\nrm -rf ~\u{202e}";
        let quoted = quote(hostile);
        assert_eq!(quoted, r"$'x\x1b[201~\nrm -rf ~\u202e'");
        assert!(!quoted.chars().any(char::is_control));
    }
}
