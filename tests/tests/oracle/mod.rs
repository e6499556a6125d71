//! The checks the property tests make, shared with the cargo-fuzz targets in
//! `fuzz/`, which include these files by path.

pub mod bodies;
pub mod platform;
