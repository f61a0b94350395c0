//! Which variant of a group is the baseline and which the optimization, so that every
//! suite labels its cases the same way and the report can compute ratios.

use crate::results::Side;

/// The side of `variant` in its A/B pair, or `None` for a variant that is neither.
pub fn side(variant: &str) -> Option<Side> {
    match variant {
        "memory" | "baseline" | "http1" | "json" | "unbatched" | "glibc" | "bare" | "plain" => {
            Some(Side::Baseline)
        }
        // TLS is not an optimization but the other side of its pair: what it costs is
        // read as TLS ÷ plaintext like every other ratio.
        "pooled" | "h2c" | "protobuf" | "batched" | "mimalloc" | "grpc_unary" | "grpc_stream"
        | "system" | "tls" | "tls_full" | "tls_resumed" => Some(Side::Optimized),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::side;
    use crate::results::Side;

    #[test]
    fn plaintext_is_the_baseline_of_the_tls_pairs() {
        assert_eq!(side("plain"), Some(Side::Baseline));
        for tls in ["tls", "tls_full", "tls_resumed"] {
            assert_eq!(side(tls), Some(Side::Optimized), "{tls}");
        }
    }
}
