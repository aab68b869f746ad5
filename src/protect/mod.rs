//! Endpoint protection: sparing a receiver that keeps failing. The rules
//! live here, pure; the state lives in the store, shared by every
//! dispatcher, and the store applies the rules where it records outcomes
//! and claims work.

pub mod breaker;

pub use breaker::counts_as_failure;
