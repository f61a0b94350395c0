//! Benchmarks and load generation for the ingest system: criterion and callgrind suites,
//! allocation counts, and a load generator. Uses `system` as a library; every measuring
//! command writes a result file (see [`results`]).

pub mod load;
pub mod peers;
pub mod results;
