//! The two database engines: opening each one, bringing its schema up to
//! date, and hearing of changes other processes make.

pub(crate) mod changes;
pub(crate) mod migrate;
pub(crate) mod postgres;
pub(crate) mod sqlite;
