//! What the suite sends through a dialect: the token's placement, and each client message
//! (`[outbound.<type>]`; `run.message` is the older spelling of `[outbound.user_message]`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{Dialect, placeholders, render};

/// The placeholders a `user_message` template may use.
const MESSAGE_PLACEHOLDERS: [&str; 4] = ["content", "thread_id", "user_id", "id"];
/// The placeholders a `ping` template may use.
const PING_PLACEHOLDERS: [&str; 1] = ["id"];

/// The placeholders the template of client type `kind` may use.
pub(super) fn placeholders_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "user_message" => &MESSAGE_PLACEHOLDERS,
        _ => &PING_PLACEHOLDERS,
    }
}

/// A token placeholder's value: `{token}` the JWT as it is, `{token_b64url}` base64url without
/// padding of the JWT's text.
fn token_value(token: &str, name: &str) -> String {
    match name {
        "token_b64url" => URL_SAFE_NO_PAD.encode(token.as_bytes()),
        _ => token.to_owned(),
    }
}

impl Dialect {
    /// The subprotocols to offer with `token` in the subprotocol placement: the entries that
    /// carry no token, then those that do.
    pub(crate) fn subprotocols(&self, token: &str) -> (Vec<String>, Vec<String>) {
        let (bearing, plain): (Vec<&String>, Vec<&String>) = self
            .spec
            .auth
            .subprotocols
            .iter()
            .partition(|p| !placeholders(p).is_empty());
        if !self.is_canonical() {
            self.fire(format!(
                "auth: token in the subprotocols {}",
                self.spec.auth.subprotocols.join(", ")
            ));
        }
        (
            plain.into_iter().cloned().collect(),
            bearing
                .into_iter()
                .map(|p| render(p, |n| token_value(token, n)))
                .collect(),
        )
    }

    /// The upgrade header carrying `token` in the header placement: (name, value).
    pub(crate) fn auth_header(&self, token: &str) -> (String, String) {
        let auth = &self.spec.auth;
        (
            auth.header.clone(),
            render(&auth.header_value, |n| token_value(token, n)),
        )
    }

    /// The query parameter carrying the token in the query placement.
    pub(crate) fn query_param(&self) -> &str {
        &self.spec.auth.query
    }

    /// `frame` as this dialect sends it: a canonical client message of a type the dialect
    /// has a template for (a `user_message` with a string `payload.content`, a `ping`, a
    /// `resume`) becomes
    /// that template filled in; anything else, such as a frame a step sends malformed on
    /// purpose, is sent untouched (`None`). Each message sent is counted under `sent TYPE`.
    pub(crate) fn translate(&self, frame: &Value) -> Option<Value> {
        let kind = frame.get("type")?.as_str()?;
        if !matches!(kind, "user_message" | "ping" | "resume") {
            return None;
        }
        let payload = frame.get("payload")?.as_object()?;
        if kind == "user_message" && !payload.get("content")?.is_string() {
            return None;
        }
        let canonical = self.is_canonical();
        let Some(template) = self.outbound_template(kind) else {
            if !canonical {
                self.record_frame(&format!("sent {kind}"), Vec::new());
            }
            return None;
        };
        let lookup = |name: &str| -> Option<Value> {
            match name {
                "id" => frame.get("id").cloned(),
                other => payload.get(other).cloned(),
            }
        };
        let out = fill(template, &lookup)?;
        let to = out.get("type").and_then(Value::as_str).unwrap_or(kind);
        self.record_frame(
            &format!("sent {kind}"),
            vec![format!(
                "outbound: {kind} sent as a {to} through its template"
            )],
        );
        Some(out)
    }
}

/// `template` filled in: a string that is exactly one placeholder takes the value as it is (of
/// any JSON type), and its key or element is left out when there is none; placeholders inside
/// longer strings are replaced by the value's text. `None` when the template itself vanishes.
fn fill(template: &Value, lookup: &dyn Fn(&str) -> Option<Value>) -> Option<Value> {
    match template {
        Value::String(s) => {
            let names = placeholders(s);
            if names.len() == 1 && *s == format!("{{{}}}", names[0]) {
                return lookup(names[0]);
            }
            Some(Value::String(render(s, |n| match lookup(n) {
                Some(Value::String(v)) => v,
                Some(other) => other.to_string(),
                None => String::new(),
            })))
        }
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|v| fill(v, lookup)).collect(),
        )),
        Value::Object(fields) => {
            let mut out = Map::new();
            for (k, v) in fields {
                if let Some(v) = fill(v, lookup) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}
