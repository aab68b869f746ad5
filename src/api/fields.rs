//! Checks on a request's fields beyond their JSON types, collecting every
//! field at fault (named as the client sent it) instead of stopping at the
//! first, so one answer tells a client everything to fix.

use std::fmt::Display;

use super::problem::{FieldError, Problem};
use crate::ops::OpsError;

/// A request body whose fields have rules beyond their types (lengths,
/// patterns, ranges, fields that go together): the rules the OpenAPI
/// document states for it, checked without the database.
pub trait Check {
    /// Adds every field that breaks a rule to `errors`.
    fn check(&self, errors: &mut FieldErrors);
}

/// The fields at fault so far, each named once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Records `field` as at fault, unless it (or the top-level field it is
    /// part of, for `headers.x-team`) already is: its first reason is the
    /// one that counts, and a field removed for its type has no other.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        let field = field.into();
        if self.names(&field) {
            return;
        }
        self.0.push(FieldError {
            field,
            reason: reason.into(),
        });
    }

    /// Whether `field`, or its top-level field, is already at fault.
    pub fn names(&self, field: &str) -> bool {
        let top = top_level(field);
        self.0.iter().any(|e| top_level(&e.field) == top)
    }

    /// The value of `result`, or `None` with its error recorded against `field`.
    pub fn check<T, E: Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    /// As [`FieldErrors::check`] for the validators of [`crate::ops`], which
    /// name fields by their own words: the reason is kept, the name is the
    /// one the client sent.
    pub fn ops<T>(&mut self, field: &str, result: crate::ops::Result<T>) -> Option<T> {
        result
            .map_err(|err| match err.refusal() {
                Some((_, reason)) => self.add(field, reason),
                None => self.add(field, err.to_string()),
            })
            .ok()
    }

    /// Whether no field is at fault.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when no field is at fault, else the 422 problem naming each.
    pub fn into_result(self) -> Result<(), Problem> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(Problem::invalid_fields(self.0)),
        }
    }

    /// The fields at fault.
    pub fn into_inner(self) -> Vec<FieldError> {
        self.0
    }
}

/// `headers` for `headers.x-team`: the field of the body it belongs to.
fn top_level(field: &str) -> &str {
    field.split(['.', '[']).next().unwrap_or(field)
}

/// A refusal from [`crate::ops`] as the API answers it, with the fields
/// `ops` names its own way renamed as the client sent them.
pub fn ops_problem(err: OpsError, names: &[(&str, &str)]) -> Problem {
    Problem::from(err).named_as_sent(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_is_named_once_with_its_first_reason() {
        let mut errors = FieldErrors::default();
        errors.add("headers.x-team", "bad value");
        errors.add("headers", "not an object");
        errors.add("name", "empty");
        errors.add("name", "too long");
        let fields: Vec<(String, String)> = errors
            .into_inner()
            .into_iter()
            .map(|e| (e.field, e.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("headers.x-team".to_string(), "bad value".to_string()),
                ("name".to_string(), "empty".to_string())
            ]
        );
    }
}
