//! The scenarios the bench runs: [`sessions`] (capacity, detection, recovery, fan-out)
//! and [`unary`] (throughput, for the overhead comparison).

pub mod sessions;
pub mod unary;
