//! Support code shared by the integration tests. Each test binary compiles
//! its own copy and uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod postgres;
