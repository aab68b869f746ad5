//! The delivery engine.

/// Standard Webhooks signatures and secrets.
pub mod sign;
