//! Benchmarks and load generation for the ingest system: criterion and callgrind suites,
//! allocation counts, and a load generator. Uses `system` as a library; every measuring
//! command writes a result file (see [`results`]).

pub mod abuse;
pub mod alloc;
pub mod callgrind;
pub mod load;
pub mod pairs;
pub mod peers;
pub mod process;
pub mod profile;
pub mod smoke;
pub mod soak;
pub mod stages;
pub mod system_load;
pub mod workloads;

pub use study::{criterion_results, gate, results};
