//! Integration tests of the harness, in one binary.

mod gate;
mod profile;
