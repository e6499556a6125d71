//! Swagger UI at `/docs/`, on the finished document, with nothing from other hosts.
//!
//! poem-openapi ships Swagger UI's script and stylesheet inside a page that also
//! inlines the document. The gateway serves the two assets as files of their own
//! instead, with a page whose only script is a file of the gateway's too, so a
//! strict Content-Security-Policy holds (no inline script) and the browser caches
//! the megabyte of script. The page loads `/openapi.json`, the same document
//! clients are generated from, and turns off the online validator badge, which
//! would call validator.swagger.io.

use poem::endpoint::make_sync;
use poem::http::header;
use poem::web::Redirect;
use poem::{Endpoint, IntoResponse, Request, Response, Route};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>authgate API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
<main id="ui"></main>
<script src="swagger-ui-bundle.js"></script>
<script src="init.js"></script>
</body>
</html>
"#;

const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: new URL("../openapi.json", window.location.href).href,
  dom_id: "#ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  withCredentials: false,
});
"##;

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The text between `open` and the next `close` in `html`.
fn between<'a>(html: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = html.find(open)? + open.len();
    let len = html[start..].find(close)?;
    Some(&html[start..start + len])
}

fn asset(body: String, content_type: &'static str) -> impl Endpoint {
    make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "public, max-age=86400")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(body.clone())
    })
}

/// The `/docs` endpoint, from the page poem-openapi renders (`swagger_html`).
pub fn endpoint(swagger_html: &str) -> Result<impl Endpoint, String> {
    let style = between(swagger_html, "<style charset=\"UTF-8\">", "</style>")
        .ok_or("no stylesheet in poem-openapi's Swagger UI page")?
        .to_owned();
    let script = between(swagger_html, "<script charset=\"UTF-8\">", "</script>")
        .ok_or("no script in poem-openapi's Swagger UI page")?
        .to_owned();
    let page = make_sync(|req: Request| {
        // Relative asset paths need the trailing slash.
        if !req.original_uri().path().ends_with('/') {
            return Redirect::moved_permanent("docs/").into_response();
        }
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .header(header::CONTENT_SECURITY_POLICY, POLICY)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(PAGE)
    });
    Ok(Route::new()
        .at("/", page)
        .at(
            "/swagger-ui-bundle.js",
            asset(script, "text/javascript; charset=utf-8"),
        )
        .at("/swagger-ui.css", asset(style, "text/css; charset=utf-8"))
        .at(
            "/init.js",
            asset(INIT.to_owned(), "text/javascript; charset=utf-8"),
        ))
}
