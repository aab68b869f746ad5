//! SQL plumbing shared by every store operation: the statements that
//! differ between SQLite and Postgres, rows bound as parameters, and the
//! conversion of rows into model types.

pub(crate) mod dialect;
pub(crate) mod rows;
pub(crate) mod values;
