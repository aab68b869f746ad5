//! Numbers and names written the way people read them, shared by the
//! views, the confirmation questions and the flash lines `io.rs` writes.

use crate::held::Hold;
use crate::model::{Endpoint, EndpointState};

/// `1204` as `1,204`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An endpoint's backlog, `1,204 held` when its state holds that work.
pub fn backlog_text(backlog: i64, state: EndpointState) -> String {
    let count = group_digits(backlog.max(0) as u64);
    match Hold::of_endpoint(state) {
        Some(_) if backlog > 0 => format!("{count} held"),
        _ => count,
    }
}

/// `tenant/name`, how people name an endpoint.
pub fn endpoint_label(endpoint: &Endpoint) -> String {
    format!("{}/{}", endpoint.tenant_name, endpoint.name)
}
