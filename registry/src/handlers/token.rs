//! The token endpoint of the token flow (`/auth/token`): clients that got a `Bearer`
//! challenge come here with the challenge's `service` and `scope`, and Basic credentials or
//! none, and leave with a short-lived signed token for what they are allowed.

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::Reply;
use crate::{
    auth::Credentials,
    error::{ErrorCode, RegistryError},
    query::Query,
    state::AppState,
};

/// `GET /auth/token?service=..&scope=repository:NAME:pull,push&scope=..` with optional Basic
/// credentials (distribution's token endpoint): 200 `{token, access_token, expires_in,
/// issued_at}`, 401 UNAUTHORIZED for bad credentials.
pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = Query::parse(query.as_deref());
    let scopes: Vec<String> = query.all("scope").flat_map(split_scopes).collect();
    let result = match Credentials::of(&headers) {
        Ok(credentials) => state.auth().issue_token(credentials, &scopes).await,
        Err(e) => Err(e),
    };
    reply(result)
}

/// `POST /auth/token`, the OAuth2 form (`grant_type=password&username=..&password=..&scope=..`)
/// that containerd tries first when it has credentials; the same answer as [`get`].
pub(crate) async fn post(State(state): State<AppState>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_form("the form is not UTF-8").into_response();
    };
    let form = Query::parse(Some(text));
    if form.first("grant_type") != Some("password") {
        return bad_form("only grant_type=password is supported").into_response();
    }
    let credentials = match (form.first("username"), form.first("password")) {
        (Some(user), Some(password)) => Some(Credentials::Basic(user.into(), password.into())),
        _ => None,
    };
    let scopes: Vec<String> = form.all("scope").flat_map(split_scopes).collect();
    reply(state.auth().issue_token(credentials, &scopes).await)
}

/// Several scopes may share one parameter, separated by spaces.
fn split_scopes(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

fn reply(result: Result<crate::auth::TokenReply, RegistryError>) -> Response {
    result
        .and_then(|token| Reply::new(StatusCode::OK).json(&token))
        .into_response()
}

fn bad_form(why: &'static str) -> RegistryError {
    RegistryError::new(ErrorCode::Unsupported, why).with_status(StatusCode::BAD_REQUEST)
}
