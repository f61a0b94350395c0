//! Which variant of a group is the baseline and which the optimization, so that every
//! suite labels its cases the same way and the report can compute ratios.

use crate::results::Side;

/// The side of `variant` in its A/B pair, or `None` for a variant that is neither.
pub fn side(variant: &str) -> Option<Side> {
    match variant {
        "memory" | "baseline" | "http1" | "json" | "unbatched" | "glibc" | "bare" => {
            Some(Side::Baseline)
        }
        "pooled" | "h2c" | "protobuf" | "batched" | "mimalloc" | "grpc_unary" | "grpc_stream"
        | "system" => Some(Side::Optimized),
        _ => None,
    }
}
