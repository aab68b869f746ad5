//! Sink (stub, being written).
