//! The control center's web UI at `/`: the files built into this binary
//! (`ui/dist` when it was compiled; a debug build reads them from there at
//! run time), or a directory given at start (`--ui-dir`, for working on the
//! UI). Unknown paths answer the page (the UI routes in the browser); the
//! API's own unknown paths stay JSON 404s.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// `ui/dist` as it was when this binary was built, if it was.
#[derive(rust_embed::Embed)]
#[folder = "../../ui/dist"]
#[allow_missing = true]
struct Built;

/// Whether this binary carries a built UI.
pub fn built_in() -> bool {
    Built::get("index.html").is_some()
}

/// A file of the built UI, or the page for any other path.
pub(super) async fn built(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some((file, name)) = Built::get(path)
        .map(|f| (f, path))
        .or_else(|| Built::get("index.html").map(|f| (f, "index.html")))
    else {
        return (
            StatusCode::NOT_FOUND,
            "this binary was built without the UI",
        )
            .into_response();
    };
    let mime = file.metadata.mimetype().to_owned();
    let cache = if name.starts_with("assets/") {
        // Hashed names: a new build has new names.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, cache.to_owned()),
        ],
        file.data,
    )
        .into_response()
}
