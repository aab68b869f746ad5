//! Signatures (stub, being written).
