//! Numbers and names written the way people read them, shared by the
//! views, the confirmation questions and the flash lines `io.rs` writes.

use crate::model::Endpoint;

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

/// `tenant/name`, how people name an endpoint.
pub fn endpoint_label(endpoint: &Endpoint) -> String {
    format!("{}/{}", endpoint.tenant_name, endpoint.name)
}
