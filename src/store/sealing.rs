//! Endpoint secrets on their way into and out of the database: sealed with
//! the store's `[secrets] key` when it has one (see [`crate::seal`]),
//! opened when read, plain when there is no key.

use super::{Result, StoreError};
use crate::model::Endpoint;
use crate::redact::{is_sensitive_header, replace_url_password, url_password};
use crate::seal::{SecretsKey, is_sealed, open, seal};

/// Seals and opens the secret values of one endpoint: each is bound to
/// the endpoint and its field, so it opens nowhere else.
pub(crate) struct Sealer<'a> {
    key: Option<&'a SecretsKey>,
    endpoint_id: &'a str,
}

impl<'a> Sealer<'a> {
    pub(crate) fn new(key: Option<&'a SecretsKey>, endpoint_id: &'a str) -> Sealer<'a> {
        Sealer { key, endpoint_id }
    }

    fn seal(&self, field: &str, plain: &str) -> Result<String> {
        match self.key {
            None => Ok(plain.to_string()),
            Some(key) => {
                seal(key, &self.context(field), plain).map_err(|reason| self.error(field, reason))
            }
        }
    }

    fn open(&self, field: &str, stored: &str) -> Result<String> {
        open(self.key, &self.context(field), stored).map_err(|reason| self.error(field, reason))
    }

    fn context(&self, field: &str) -> String {
        format!("{}/{field}", self.endpoint_id)
    }

    fn error(&self, field: &str, reason: crate::seal::SealError) -> StoreError {
        StoreError::Sealed {
            endpoint_id: self.endpoint_id.to_string(),
            field: field.to_string(),
            reason,
        }
    }

    /// A signing secret (current or previous: rotation copies one column
    /// into the other, so both share a field) as stored.
    pub(crate) fn seal_secret(&self, secret: &str) -> Result<String> {
        self.seal("secret", secret)
    }

    pub(crate) fn open_secret(&self, stored: &str) -> Result<String> {
        self.open("secret", stored)
    }

    /// The URL as stored: only its password sealed, so the rest stays
    /// readable to whoever looks at the table.
    pub(crate) fn seal_url(&self, url: &str) -> Result<String> {
        match url_password(url) {
            Some(password) if self.key.is_some() => {
                Ok(replace_url_password(url, &self.seal("url", password)?))
            }
            _ => Ok(url.to_string()),
        }
    }

    pub(crate) fn open_url(&self, stored: &str) -> Result<String> {
        match url_password(stored) {
            Some(password) if is_sealed(password) => {
                Ok(replace_url_password(stored, &self.open("url", password)?))
            }
            _ => Ok(stored.to_string()),
        }
    }

    /// Headers as stored: the values of sensitive ones sealed.
    pub(crate) fn seal_headers(
        &self,
        headers: &[(String, String)],
    ) -> Result<Vec<(String, String)>> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = match is_sensitive_header(name) {
                    true => self.seal(&header_field(name), value)?,
                    false => value.clone(),
                };
                Ok((name.clone(), value))
            })
            .collect()
    }

    pub(crate) fn open_headers(
        &self,
        stored: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>> {
        stored
            .into_iter()
            .map(|(name, value)| {
                // Only sensitive headers are ever sealed; another header's
                // value is whatever the operator set, prefix or not.
                let value = match is_sensitive_header(&name) {
                    true => self.open(&header_field(&name), &value)?,
                    false => value,
                };
                Ok((name, value))
            })
            .collect()
    }

    /// An endpoint as read from its row, with every secret opened.
    pub(crate) fn open_endpoint(&self, mut endpoint: Endpoint) -> Result<Endpoint> {
        endpoint.secret = self.open_secret(&endpoint.secret)?;
        endpoint.previous_secret = endpoint
            .previous_secret
            .map(|s| self.open_secret(&s))
            .transpose()?;
        endpoint.url = self.open_url(&endpoint.url)?;
        endpoint.headers = self.open_headers(std::mem::take(&mut endpoint.headers))?;
        Ok(endpoint)
    }
}

fn header_field(name: &str) -> String {
    format!("header/{}", name.to_ascii_lowercase())
}
