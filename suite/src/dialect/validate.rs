//! Checking a dialect file before it is used, for what serde cannot: budgets within the spec's
//! ranges, names and placeholders that exist, requirement ids of the catalogue, and that
//! nothing the dialect synthesizes could pass a requirement.

use goldenpath_spec::{Direction as SpecDirection, MessageType};
use serde_json::Value;

use super::spec::{PingAnswer, PlacementName, Spec};
use super::{DialectError, outbound, placeholders, spec};
use crate::checks::check;

/// Check what serde cannot: names, placeholders, requirement ids, and that nothing synthesized
/// can pass a requirement.
pub(super) fn validate(spec: &Spec, origin: &str) -> Result<(), DialectError> {
    let invalid = |key: &str, problem: String| DialectError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let ranges = goldenpath_spec::limits::limits().budgets;
    let b = &spec.budgets;
    for (key, value, [least, most]) in [
        (
            "budgets.first_event_ms",
            b.first_event_ms,
            ranges.first_event_ms,
        ),
        (
            "budgets.completion_ms",
            b.completion_ms,
            ranges.completion_ms,
        ),
        ("budgets.max_gap_ms", b.max_gap_ms, ranges.max_gap_ms),
        (
            "budgets.run_timeout_ms",
            b.run_timeout_ms,
            ranges.run_timeout_ms,
        ),
    ] {
        if let Some(v) = value
            && !(least..=most).contains(&v)
        {
            return Err(invalid(
                key,
                format!(
                    "{v} ms is outside the range the spec allows, {least} to {most} ms (features/limits.toml [budgets])"
                ),
            ));
        }
    }
    let only = |key: &str, text: &str, allowed: &[&str]| -> Result<(), DialectError> {
        match placeholders(text)
            .into_iter()
            .find(|p| !allowed.contains(p))
        {
            Some(p) => Err(invalid(
                key,
                format!(
                    "unknown placeholder {{{p}}} in {text:?} (allowed: {})",
                    allowed
                        .iter()
                        .map(|a| format!("{{{a}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            None => Ok(()),
        }
    };
    if spec.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty".into()));
    }
    if let Some(path) = &spec.endpoint.path
        && !path.starts_with('/')
    {
        return Err(invalid(
            "endpoint.path",
            format!("{path:?} must start with /"),
        ));
    }
    let auth = &spec.auth;
    if !auth.placements.contains(&auth.placement) {
        return Err(invalid(
            "auth.placement",
            format!("{:?} is not one of auth.placements", auth.placement),
        ));
    }
    const TOKEN: [&str; 2] = ["token", "token_b64url"];
    only("auth.header_value", &auth.header_value, &TOKEN)?;
    if auth.placements.contains(&PlacementName::Header)
        && placeholders(&auth.header_value).is_empty()
    {
        return Err(invalid(
            "auth.header_value",
            "carries no {token} or {token_b64url}".into(),
        ));
    }
    for (i, p) in auth.subprotocols.iter().enumerate() {
        only(&format!("auth.subprotocols[{i}]"), p, &TOKEN)?;
    }
    if auth.placements.contains(&PlacementName::Subprotocol)
        && !auth
            .subprotocols
            .iter()
            .any(|p| !placeholders(p).is_empty())
    {
        return Err(invalid(
            "auth.subprotocols",
            "no entry carries {token} or {token_b64url}, yet `subprotocol` is a placement".into(),
        ));
    }
    if let Some(selected) = &auth.selected {
        only("auth.selected", selected, &TOKEN)?;
    }
    for (k, v) in &auth.claims {
        if let Value::String(s) = v {
            only(&format!("auth.claims.{k}"), s, &["uuid"])?;
        }
    }
    if spec.run.message.is_some() && spec.outbound.contains_key("user_message") {
        return Err(invalid(
            "run.message",
            "is the older spelling of [outbound.user_message]: keep one of them".into(),
        ));
    }
    let mut templates: Vec<(String, &str, &Value)> = Vec::new();
    if let Some(message) = &spec.run.message {
        templates.push(("run.message".into(), "user_message", message));
    }
    for (kind, rule) in &spec.outbound {
        let is_client = MessageType::from_wire(kind)
            .is_some_and(|t| t.direction() == SpecDirection::ClientToServer);
        if !is_client {
            return Err(invalid(
                &format!("outbound.{kind}"),
                format!(
                    "{kind:?} is not a client type of spec v1 ({})",
                    MessageType::ALL
                        .iter()
                        .filter(|t| t.direction() == SpecDirection::ClientToServer)
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        templates.push((
            format!("outbound.{kind}.message"),
            kind.as_str(),
            &rule.message,
        ));
    }
    for (key, kind, message) in templates {
        if !message.get("type").is_some_and(Value::is_string) {
            return Err(invalid(&key, "must be a table with a string `type`".into()));
        }
        let mut texts = Vec::new();
        strings(message, &mut texts);
        let allowed = outbound::placeholders_of(kind);
        for t in &texts {
            only(&key, t, allowed)?;
        }
        if kind == "user_message" && !texts.iter().any(|t| placeholders(t).contains(&"content")) {
            return Err(invalid(&key, "carries no {content}".into()));
        }
    }
    if spec.capabilities.ping == PingAnswer::None {
        if spec.inbound.barrier.is_some() {
            return Err(invalid(
                "capabilities.ping",
                "\"none\" sends no ping, so no [inbound.barrier] can answer it: drop one".into(),
            ));
        }
        if spec.outbound.contains_key("ping") {
            return Err(invalid(
                "outbound.ping",
                "capabilities.ping = \"none\" sends no ping: drop [outbound.ping]".into(),
            ));
        }
        if !spec
            .lacks
            .iter()
            .any(|l| l.requirements.iter().any(|r| r == check("ping.answered")))
        {
            return Err(invalid(
                "capabilities.ping",
                format!(
                    "\"none\" cannot judge {}: add a [[lacks]] entry naming it",
                    check("ping.answered")
                ),
            ));
        }
    }
    let server_type = |name: &str| {
        MessageType::from_wire(name).is_some_and(|t| t.direction() == SpecDirection::ServerToClient)
    };
    let inbound = &spec.inbound;
    for (from, to) in &inbound.aliases {
        if !server_type(to) {
            return Err(invalid(
                &format!("inbound.aliases.{from}"),
                format!("{to:?} is not a server type of spec v1"),
            ));
        }
    }
    for (kind, rules) in &inbound.events {
        let key = format!("inbound.events.{kind}");
        if !server_type(kind) {
            return Err(invalid(
                &key,
                format!("{kind:?} is not a server type of spec v1 (rules apply after aliases)"),
            ));
        }
        for (field, map) in &rules.values {
            if map.is_empty() {
                return Err(invalid(&format!("{key}.values.{field}"), "is empty".into()));
            }
        }
        for (from, to) in &rules.rename {
            if from.is_empty() || to.is_empty() || to.split('.').any(str::is_empty) {
                return Err(invalid(
                    &format!("{key}.rename.{from}"),
                    format!("{to:?} is not a field path"),
                ));
            }
        }
    }
    for (field, paths) in &inbound.lift {
        let key = format!("inbound.lift.{field}");
        if ![
            "run_id",
            "thread_id",
            "user_id",
            "timestamp",
            "event_id",
            "seq",
        ]
        .contains(&field.as_str())
        {
            return Err(invalid(
                &key,
                format!("{field:?}: only a canonical top-level field can be lifted"),
            ));
        }
        if paths.is_empty()
            || paths
                .iter()
                .any(|p| p.split('.').count() < 2 || p.split('.').any(str::is_empty))
        {
            return Err(invalid(
                &key,
                format!("{paths:?}: each entry is a nested path, e.g. \"payload.{field}\""),
            ));
        }
    }
    for (kind, rules) in &inbound.events {
        for (field, inner) in &rules.pick {
            if field.is_empty() || inner.is_empty() || inner.split('.').any(str::is_empty) {
                return Err(invalid(
                    &format!("inbound.events.{kind}.pick.{field}"),
                    format!("{inner:?} is not a field path"),
                ));
            }
        }
    }
    for (from, to) in &inbound.error_codes {
        if to.is_empty()
            || !to
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                &format!("inbound.error_codes.{from}"),
                format!("{to:?} is no canonical error code (snake_case)"),
            ));
        }
    }
    if let Some(t) = &inbound.greeting_user_id
        && t.keep == 0
    {
        return Err(invalid(
            "inbound.greeting_user_id.keep",
            "must be at least 1".into(),
        ));
    }
    for field in &inbound.inherit {
        if !["user_id", "thread_id"].contains(&field.as_str()) {
            return Err(invalid(
                "inbound.inherit",
                format!("{field:?}: only user_id and thread_id can be inherited"),
            ));
        }
    }
    if inbound.synthesize.contains(&spec::Synthesized::ToolCallId) && inbound.pairing.is_empty() {
        return Err(invalid(
            "inbound.pairing",
            "synthesizing tool_call_id needs the pairing key (e.g. [\"run_id\", \"tool_name\"])"
                .into(),
        ));
    }
    for (i, lack) in spec.lacks.iter().enumerate() {
        let key = format!("lacks[{i}]");
        if lack.capability.trim().is_empty() || lack.reason.trim().is_empty() {
            return Err(invalid(&key, "needs a capability and a reason".into()));
        }
        for id in &lack.requirements {
            if goldenpath_spec::catalogue::requirement(id).is_none() {
                return Err(invalid(
                    &format!("{key}.requirements"),
                    format!("{id:?} names no requirement of spec v1"),
                ));
            }
        }
    }
    for s in &inbound.synthesize {
        let required = s.requirement();
        if !spec
            .lacks
            .iter()
            .any(|l| l.requirements.iter().any(|r| r == required))
        {
            return Err(invalid(
                "inbound.synthesize",
                format!(
                    "a synthesized {} cannot pass {required}: add a [[lacks]] entry naming it",
                    s.field()
                ),
            ));
        }
    }
    Ok(())
}

/// Every string inside `value`.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}
