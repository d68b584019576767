//! axum extractors whose rejections answer with the uniform JSON error body, naming the
//! field at fault in our own words.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// JSON body extractor and responder: like `axum::Json`, but a bad body is a uniform error
/// — 415 `unsupported_media_type`, 413 `body_too_large`, 400 `malformed_json`, or 422
/// `missing_field` / `invalid_field` with `field` naming the field (`preferences.min_age`,
/// `interests[2]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "expected `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                body_too_large()
            } else {
                ApiError::new(
                    rejection.status(),
                    ErrorCode::BadRequest,
                    "the request body could not be read",
                )
            }
        })?;
        decode_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[..essence.len() - 5].contains('/')
            && essence.to_ascii_lowercase().ends_with("+json"))
}

/// Decodes a JSON request body, answering the uniform 400 / 422 errors.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |err: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            format!(
                "the body is not valid JSON (line {}, column {})",
                err.line(),
                err.column()
            ),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(|e| malformed(&e))?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_data() {
                Err(field_error(
                    &path,
                    &inner.to_string(),
                    ErrorCode::InvalidField,
                ))
            } else {
                Err(malformed(&inner))
            }
        }
    }
}

/// The 422 for a field `serde` refused, in our words: `missing_field` ("`x` is
/// required") or `code` ("`x` must be one of a, b"; "`x` must be a string"; "`x` is
/// invalid").
fn field_error(path: &str, serde_message: &str, code: ErrorCode) -> ApiError {
    // serde's own wording, which we only read: "missing field `x`", "unknown variant `v`,
    // expected one of `a`, `b`", "invalid type: string \"v\", expected u8", "invalid
    // value: ..., expected ...", "invalid length 3, expected ...".
    let message = serde_message
        .split(" at line ")
        .next()
        .unwrap_or(serde_message);
    let join = |parent: &str, child: &str| {
        if parent.is_empty() || parent == "." {
            child.to_owned()
        } else {
            format!("{parent}.{child}")
        }
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let field = join(path, name);
        return ApiError::validation(
            &field,
            ErrorCode::MissingField,
            format!("`{field}` is required"),
        );
    }
    let field = if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    let expected = message
        .split_once(", expected ")
        .map(|(_, expected)| expected.replace('`', ""));
    let text = if message.starts_with("unknown variant") {
        match expected {
            Some(list) => format!("`{field}` must be {list}"),
            None => format!("`{field}` has a value that is not allowed"),
        }
    } else if message.starts_with("unknown field") {
        format!("`{field}` is not a known field")
    } else if message.starts_with("invalid length") {
        format!("`{field}` has the wrong number of items")
    } else {
        match expected {
            Some(what) => format!("`{field}` must be {}", with_article(&what)),
            None => format!("`{field}` is invalid"),
        }
    };
    ApiError::validation(&field, code, text)
}

/// "u8" → "a number from 0 to 255", "a string" stays, "struct X" → "an object".
fn with_article(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".to_owned(),
        "u16" | "u32" | "u64" | "usize" => "a whole number of at least 0".to_owned(),
        "i32" | "i64" => "a whole number".to_owned(),
        "a boolean" | "a string" | "a sequence" | "a map" => expected.to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other
            if other.starts_with("a ")
                || other.starts_with("an ")
                || other.starts_with("one of") =>
        {
            other.to_owned()
        }
        other => format!("a valid {other}"),
    }
}

/// The 413 answer for a request body over the limit.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        "the request body is too large",
    )
}

/// Query-string extractor whose rejection is a 422 `invalid_query` naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        decode_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Decodes a query string, answering 422 `invalid_query` with the parameter at fault.
pub fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let mut error = field_error(&path, &message, ErrorCode::InvalidQuery);
        error.body.error.code = ErrorCode::InvalidQuery;
        error
    })
}

/// Path-parameter extractor; a malformed id is a 404 `not_found` so that probing ids
/// reveals nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_: PathRejection| ApiError::not_found("no such resource"))
    }
}

/// Fallback handler: unknown routes answer 404 with the uniform body.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("no such route")
}

/// Answers 405 with the uniform body.
pub async fn method_not_allowed_fallback() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        gender: Gender,
        prefs: Prefs,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Prefs {
        min_age: u8,
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Gender {
        Male,
        Female,
    }

    fn refuse(json: &str) -> ApiError {
        decode_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn an_unknown_enum_value_names_the_field_and_the_allowed_values() {
        let err = refuse(r#"{"name":"a","gender":"robot","prefs":{"min_age":20,"tags":[]}}"#);
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), ErrorCode::InvalidField);
        assert_eq!(err.body.error.field.as_deref(), Some("gender"));
        assert_eq!(err.body.error.message, "`gender` must be male or female");
    }

    #[test]
    fn a_missing_nested_field_is_named_with_its_path() {
        let err = refuse(r#"{"name":"a","gender":"male","prefs":{"tags":[]}}"#);
        assert_eq!(err.code(), ErrorCode::MissingField);
        assert_eq!(err.body.error.field.as_deref(), Some("prefs.min_age"));
        assert_eq!(err.body.error.message, "`prefs.min_age` is required");
    }

    #[test]
    fn a_wrong_type_inside_a_list_names_the_item() {
        let err = refuse(r#"{"name":"a","gender":"male","prefs":{"min_age":20,"tags":["x",3]}}"#);
        assert_eq!(err.body.error.field.as_deref(), Some("prefs.tags[1]"));
        assert_eq!(err.body.error.message, "`prefs.tags[1]` must be a string");
    }

    #[test]
    fn an_out_of_range_number_says_what_fits() {
        let err = refuse(r#"{"name":"a","gender":"male","prefs":{"min_age":999,"tags":[]}}"#);
        assert_eq!(err.body.error.field.as_deref(), Some("prefs.min_age"));
        assert!(
            err.body.error.message.contains("0 to 255"),
            "{}",
            err.body.error.message
        );
    }

    #[test]
    fn broken_json_is_a_400_without_a_field() {
        let err = refuse(r#"{"name": "#);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code(), ErrorCode::MalformedJson);
        assert!(err.body.error.field.is_none());
        let trailing = refuse(r#"{"name":"a","gender":"male","prefs":{"min_age":1,"tags":[]}} x"#);
        assert_eq!(trailing.code(), ErrorCode::MalformedJson);
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    #[test]
    fn a_bad_query_parameter_is_named() {
        let err = decode_query::<Page>("limit=lots").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidQuery);
        assert_eq!(err.body.error.field.as_deref(), Some("limit"));
        assert!(decode_query::<Page>("limit=5").is_ok());
        assert!(decode_query::<Page>("").unwrap().limit.is_none());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!has_json_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(has_json_content_type(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!has_json_content_type(&headers));
    }
}
