//! Settings (stub, being written).
