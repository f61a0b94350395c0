//! An on-demand CPU profile of the running process: `GET /debug/pprof/profile?seconds=N`
//! (`PROFILE_ENDPOINT=true`). The process is sampled at about 99 Hz for `seconds` (default
//! 30, at most 300) and the answer is a pprof protobuf (`go tool pprof`, speedscope, ...) or,
//! with `format=flamegraph`, an SVG flame graph. The sampler is process-wide, so one profile
//! runs at a time: a second request gets 409 until the first is done. Frames of libc, libgcc,
//! pthread and the vDSO are left out, as in `cargo xtask profile`. A profile gives back the
//! memory it took once it is answered (`debug/sampler.rs`); the sampler is Linux's, and
//! elsewhere the path answers 501. With `DEBUG_TOKEN` set, the path wants it as a bearer
//! token (see [`crate::serve::auth`]).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use axum::{
    Router,
    extract::Query,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use pprof::protos::Message as _;

use crate::{domain::http_error::ApiError, serve::auth::Guard};

#[cfg(target_os = "linux")]
mod sampler;

/// Whether the profile endpoint is served unless asked for (`PROFILE_ENDPOINT`): it is not.
pub(crate) const DEFAULT_PROFILE_ENDPOINT: bool = false;
/// Seconds sampled when the request does not say.
pub(crate) const DEFAULT_SECONDS: u64 = 30;
/// Most seconds one profile may take.
pub(crate) const MAX_SECONDS: u64 = 300;
/// Samples per second.
const FREQUENCY: i32 = 99;

/// Libraries a sample may not be taken in (unwinding from inside them in a signal handler
/// is not safe). The sampler matches these as parts of a library's path, so they name the
/// library files exactly: a plain `libc` would also match a program whose path contains it
/// (`system-glibc`) and drop every sample.
pub const BLOCKLIST: [&str; 4] = ["/libc.so", "/libgcc_s.so", "/libpthread.so", "vdso"];

/// Set while a profile is being taken, by whichever server of this process took it.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// The profile route behind `guard` (`DEBUG_TOKEN`) when `enabled`, nothing otherwise
/// (the path then answers 404).
pub fn routes<S: Clone + Send + Sync + 'static>(enabled: bool, guard: &Guard) -> Router<S> {
    if enabled {
        guard.protect(Router::new().route("/debug/pprof/profile", get(profile)))
    } else {
        Router::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pprof,
    Flamegraph,
}

async fn profile(Query(params): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let (seconds, format) = parse(&params)?;
    let _running = Running::start().ok_or_else(busy)?;
    take(seconds, format).await
}

#[cfg(target_os = "linux")]
async fn take(seconds: u64, format: Format) -> Result<Response, ApiError> {
    let sampler =
        sampler::Sampler::start(FREQUENCY, seconds, &BLOCKLIST).map_err(|err| match err {
            sampler::StartError::Busy => busy(),
            sampler::StartError::Os(err) => internal(err),
        })?;
    // Dropping this future (the client went away, or shutdown ended the connection) drops
    // the sampler, which stops it.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Resolving symbols takes a while: off the async threads.
    tokio::task::spawn_blocking(move || {
        let rendered = render(&sampler.finish(), format);
        sampler::give_back_memory();
        rendered
    })
    .await
    .map_err(internal)?
}

#[cfg(not(target_os = "linux"))]
async fn take(_seconds: u64, _format: Format) -> Result<Response, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "profiles can be taken on Linux only",
    ))
}

fn busy() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "a profile is already being taken; try again when it is done",
    )
}

fn parse(params: &HashMap<String, String>) -> Result<(u64, Format), ApiError> {
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "seconds" | "format"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}; expected seconds and format"
        )));
    }
    let seconds = match params.get("seconds") {
        None => DEFAULT_SECONDS,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_SECONDS).contains(s))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "seconds must be a whole number from 1 to {MAX_SECONDS}, not {text:?}"
                ))
            })?,
    };
    let format = match params.get("format").map(String::as_str) {
        None | Some("pprof") => Format::Pprof,
        Some("flamegraph") => Format::Flamegraph,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be pprof or flamegraph, not {other:?}"
            )));
        }
    };
    Ok((seconds, format))
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn render(report: &pprof::Report, format: Format) -> Result<Response, ApiError> {
    Ok(match format {
        Format::Pprof => {
            let body = report.pprof().map_err(internal)?.encode_to_vec();
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"profile.pb\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Format::Flamegraph => {
            let mut svg = Vec::new();
            if report.data.is_empty() {
                // The graph renderer draws nothing at all for no samples.
                svg.extend_from_slice(IDLE_SVG.as_bytes());
            } else {
                report.flamegraph(&mut svg).map_err(internal)?;
            }
            ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
        }
    })
}

/// The flame graph of a profile without samples.
const IDLE_SVG: &str = concat!(
    r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40">"#,
    r#"<text x="10" y="25">no samples: the process used no CPU while it was profiled</text>"#,
    "</svg>\n"
);

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("profiling failed: {err}"),
    )
}

/// Holds [`PROFILING`] for one profile.
struct Running;

impl Running {
    fn start() -> Option<Running> {
        PROFILING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::BLOCKLIST;

    #[test]
    fn the_blocklist_names_the_libraries_and_not_programs_that_resemble_them() {
        let blocked = |path: &str| BLOCKLIST.iter().any(|b| path.contains(b));
        for library in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libpthread.so.0",
            "linux-vdso.so.1",
        ] {
            assert!(blocked(library), "{library}");
        }
        for program in [
            "/srv/ab/system-glibc",
            "/home/libcore/system",
            "/usr/lib/libcrypto.so.3",
        ] {
            assert!(!blocked(program), "{program}");
        }
    }
}
