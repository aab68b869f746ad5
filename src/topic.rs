//! Topics (stub, being written).
