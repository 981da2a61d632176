//! Finance's reports as CSV, for a spreadsheet: the journal, the trial balance, the orders
//! holding escrow, a wallet's statement. The same figures as the JSON reads; a client asks
//! with `Accept: text/csv`.

use super::problem::ApiError;
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE, LINK};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub const TEXT_CSV: &str = "text/csv";

/// CSV only when the client names `text/csv` and prefers it to JSON: a browser's or a
/// library's `*/*` keeps getting JSON.
pub fn wants_csv(headers: &HeaderMap) -> bool {
    let ranges: Vec<(&str, f32)> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(media_range)
        .collect();
    let best = |wanted: &[&str]| {
        ranges
            .iter()
            .filter(|(media, _)| wanted.iter().any(|w| media.eq_ignore_ascii_case(w)))
            .map(|(_, q)| *q)
            .fold(None, |best: Option<f32>, q| {
                Some(best.map_or(q, |b| b.max(q)))
            })
    };
    match best(&[TEXT_CSV]) {
        Some(csv) if csv > 0.0 => {
            best(&["application/json", "application/problem+json"]).is_none_or(|json| csv >= json)
        }
        _ => false,
    }
}

/// `text/csv;q=0.5` → ("text/csv", 0.5); a missing or unreadable weight counts as 1.
fn media_range(range: &str) -> Option<(&str, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next().filter(|m| !m.is_empty())?;
    let q = parts
        .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
        .and_then(|q| q.parse::<f32>().ok())
        .unwrap_or(1.0);
    Some((media, q))
}

/// A report's rows under its header line, as a download named `filename`.
pub struct Report<'a> {
    pub filename: &'a str,
    pub header: &'a [&'a str],
    /// `Link` to the next page (RFC 8288), where the report is paginated.
    pub next_page: Option<String>,
}

impl Report<'_> {
    pub fn render<R: Serialize>(
        self,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Response, ApiError> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        writer.write_record(self.header).map_err(csv_failed)?;
        for row in rows {
            writer.serialize(row).map_err(csv_failed)?;
        }
        let body = writer
            .into_inner()
            .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        let disposition = format!("attachment; filename=\"{}\"", self.filename);
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(CONTENT_DISPOSITION, value);
        }
        if let Some(value) = self.next_page.as_deref().and_then(next_link) {
            headers.insert(LINK, value);
        }
        Ok((headers, body).into_response())
    }
}

/// `Link: <path>; rel="next"` (RFC 8288), for a page whose body has no room to say it.
fn next_link(path: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("<{path}>; rel=\"next\"")).ok()
}

/// A page as JSON, its next page (if any) in `Link` as the CSV form gives it.
pub fn json_page(body: impl Serialize, next_page: Option<&str>) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Some(link) = next_page.and_then(next_link) {
        response.headers_mut().insert(LINK, link);
    }
    response
}

fn csv_failed(error: csv::Error) -> ApiError {
    ApiError::internal(format!("writing CSV: {error}"))
}

/// The path of a next page: `path` with `&name=value` for each parameter that was given, so
/// that the page after reads the same list.
pub fn with_parameters<'a>(
    mut path: String,
    parameters: impl IntoIterator<Item = (&'a str, Option<String>)>,
) -> String {
    for (name, value) in parameters {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={value}"));
        }
    }
    path
}

/// Instants as in the JSON reads (RFC 3339, UTC).
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(ACCEPT, value);
            }
        }
        headers
    }

    #[test]
    fn csv_only_when_asked_for_and_preferred_to_json() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["*/*"], false),
            (&["text/*"], false),
            (&["application/json"], false),
            (&["text/csv"], true),
            (&["TEXT/CSV"], true),
            (&[" text/csv ; charset=utf-8"], true),
            (&["text/csv;q=0"], false),
            (&["text/csv;q=0.0"], false),
            (&["text/csv;q=nonsense"], true),
            (&["application/json, text/csv;q=0.5"], false),
            (&["text/csv, application/json;q=0.9"], true),
            (&["text/csv;q=0.5, application/json;q=0.5"], true),
            (&["application/json;q=0.2", "text/csv;q=0.8"], true),
            (&["text/html, */*;q=0.8"], false),
        ];
        for (values, expected) in cases {
            assert_eq!(wants_csv(&accept(values)), *expected, "Accept: {values:?}");
        }
    }
}
