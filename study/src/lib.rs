//! What the study's tools share without building the system: the result-file schema
//! ([`results`]), every case a suite writes ([`cases`]) and whether the catalogue knows a
//! case ([`check`]), the A/B pairs and which variant of each is the baseline ([`pairs`]),
//! their targets ([`targets`]), the front-door protocols with one spelling each
//! ([`protocol`]), the variants of the cases, likewise ([`variant`]), the gate's rules
//! ([`gate`]), readers of what criterion and gungraun write ([`criterion_results`],
//! [`callgrind`]) and of HdrHistogram's percentile distributions ([`hgrm`]), and the names
//! and constants the suites and the report agree on ([`catalogue`]). The harness measures
//! and writes through it; xtask's report, gate, export and compare read through it.

pub mod callgrind;
pub mod cases;
pub mod catalogue;
pub mod check;
pub mod compare;
pub mod criterion_results;
pub mod export;
pub mod gate;
pub mod hgrm;
pub mod pairs;
pub mod protocol;
pub mod results;
pub mod targets;
pub mod variant;
