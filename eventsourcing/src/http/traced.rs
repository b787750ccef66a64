//! A span per HTTP request (feature `tracing`): `http_request` at `DEBUG`,
//! with the method and path, the status answered and `elapsed_us`, around
//! the handler (its own spans, such as a browser's load, nest in it).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// Runs the request's handler inside its span.
pub(super) async fn trace_request(request: Request, next: Next) -> Response {
    let span = crate::trace::timed_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path();
        status
    );
    let response = next.run(request).instrument(span.span().clone()).await;
    span.record_u64("status", u64::from(response.status().as_u16()));
    response
}
