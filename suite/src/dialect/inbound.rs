//! Received frames → canonical frames: the one place a dialect touches what the suite judges.
//!
//! A [`Normalizer`] serves one connection, in arrival order: it remembers each run's identity
//! fields, the `seq` it gave and the tool calls it opened, so that frames missing them can be
//! completed. The order of the rules is fixed: ignore (unless the frame carries a `run_id`);
//! alias the type; lift nested fields to the top level; take the payload from the envelope and
//! move the other top-level fields into it; rename, pick from objects, map values and fill
//! defaults (then those of a matching `when`) of the type's payload; map the error code;
//! convert the timestamp; restore the greeting's user id; then the run's identity, `seq` and
//! tool-call id; last the `event_id`. Each rule that changes the frame is counted on the
//! dialect, by the frame's wire type ([`Dialect::record_frame`]); a frame no rule touched is
//! counted native.

use serde_json::{Map, Value};
use std::collections::HashMap;

use goldenpath_spec::MessageType;

use super::Dialect;
use super::spec::{EnvelopeKind, Synthesized};

/// Top-level fields every server frame may carry.
const SERVER_FIELDS: [&str; 4] = ["type", "event_id", "timestamp", "payload"];
/// Top-level fields run frames add.
const RUN_FIELDS: [&str; 4] = ["user_id", "thread_id", "run_id", "seq"];
/// The error codes spec v1 defines (`schemas/README.md`): a legacy code equal to one of them
/// is native, not debt.
const CANONICAL_CODES: [&str; 10] = [
    "invalid_json",
    "not_an_object",
    "unknown_type",
    "invalid_message",
    "binary_not_supported",
    "frame_too_large",
    "thread_not_found",
    "internal_error",
    "shutting_down",
    "unauthorized",
];

/// What a received JSON object became.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Normalized {
    /// The canonical frame, for the checks and the steps.
    Frame(Value),
    /// A frame the dialect ignores; `barrier` when it answers the suite's settle ping.
    Ignored {
        /// It answers the settle ping.
        barrier: bool,
    },
}

/// One open tool call of a run, as the pairing key sees it.
#[derive(Debug)]
struct OpenCall {
    key: Vec<Option<String>>,
    id: String,
}

/// What a connection has seen of one run.
#[derive(Debug, Default)]
struct RunState {
    identity: Map<String, Value>,
    seq: u64,
    calls_opened: u64,
    unpaired: u64,
    open: Vec<OpenCall>,
}

/// Normalizes the frames one connection receives (see the [module documentation](self)).
#[derive(Debug)]
pub(crate) struct Normalizer {
    dialect: Dialect,
    user: String,
    runs: HashMap<String, RunState>,
    /// The rules applied to the frame being normalized.
    pending: std::cell::RefCell<Vec<String>>,
}

impl Normalizer {
    pub(super) fn new(dialect: Dialect, user: &str) -> Normalizer {
        Normalizer {
            dialect,
            user: user.to_owned(),
            runs: HashMap::new(),
            pending: Default::default(),
        }
    }

    /// The canonical form of `frame`, a JSON object received as `raw`; the frame and the rules
    /// it needed are counted by its wire type.
    pub(crate) fn normalize(&mut self, raw: &str, frame: Value) -> Normalized {
        if self.dialect.spec.inbound.is_identity() {
            return Normalized::Frame(frame);
        }
        let wire_type = match frame.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => "(type not a string)".to_owned(),
            None if frame.is_object() => "(no type)".to_owned(),
            None => "(not an object)".to_owned(),
        };
        let out = self.apply(raw, frame);
        let rules = std::mem::take(&mut *self.pending.borrow_mut());
        self.dialect.record_frame(&wire_type, rules);
        out
    }

    /// The rules, in order (see the [module documentation](self)).
    fn apply(&mut self, raw: &str, frame: Value) -> Normalized {
        let spec = self.dialect.spec.clone();
        let inbound = &spec.inbound;
        let Value::Object(mut top) = frame else {
            return Normalized::Frame(frame);
        };
        // The type, aliased.
        let wire_type = top.get("type").and_then(Value::as_str).map(str::to_owned);
        if let Some(t) = &wire_type {
            if inbound.ignore.contains(t) {
                // A frame of run data is never ignored: it is judged, whatever the list says.
                let carries_run = ["payload", "data"]
                    .iter()
                    .filter_map(|k| top.get(*k))
                    .chain([&Value::Object(top.clone())])
                    .any(|o| o.get("run_id").is_some_and(|r| !r.is_null()));
                if carries_run {
                    self.fire(format!("ignore refused: {t} carries a run_id, judged"));
                } else {
                    self.fire(format!("ignore: {t}"));
                    let barrier = inbound.barrier.as_ref().is_some_and(|b| {
                        b.kind == *t && b.fields.iter().all(|(k, v)| top.get(k) == Some(v))
                    });
                    return Normalized::Ignored { barrier };
                }
            }
            if let Some(to) = inbound.aliases.get(t) {
                self.fire(format!("alias: type {t} → {to}"));
                top.insert("type".into(), Value::String(to.clone()));
            }
        }
        // Fields the canonical envelope has at the top level, lifted from where the legacy
        // nests them.
        for (field, paths) in &inbound.lift {
            if top.get(field).is_some_and(|v| !v.is_null()) {
                continue;
            }
            for path in paths {
                if get_path(&top, path).is_some_and(|v| !v.is_null())
                    && let Some(v) = take_path(&mut top, path)
                {
                    top.insert(field.clone(), v);
                    self.fire(format!("lift: {path} → {field}"));
                    break;
                }
            }
        }
        let kind = top
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_default();
        let is_run = MessageType::from_wire(&kind).is_some_and(MessageType::is_run_frame);
        // The envelope: the payload from `payload` or `data`, or the frame itself; what is left
        // at the top level beyond the canonical fields moves into it.
        if !inbound.envelopes.is_empty() {
            let mut payload = Map::new();
            let mut flat = false;
            for source in &inbound.envelopes {
                match source {
                    EnvelopeKind::Payload | EnvelopeKind::Data => {
                        let key = if *source == EnvelopeKind::Payload {
                            "payload"
                        } else {
                            "data"
                        };
                        if let Some(Value::Object(inner)) = top.get(key) {
                            payload = inner.clone();
                            top.remove(key);
                            if key == "data" {
                                self.fire("envelope: payload from `data`");
                            }
                            break;
                        }
                    }
                    EnvelopeKind::Flat => {
                        flat = true;
                        break;
                    }
                }
            }
            let keep = |k: &str| SERVER_FIELDS.contains(&k) || (is_run && RUN_FIELDS.contains(&k));
            let extra: Vec<String> = top.keys().filter(|k| !keep(k)).cloned().collect();
            if flat && !extra.is_empty() {
                self.fire("envelope: payload from the top-level fields (flat)");
            }
            for k in extra {
                if let Some(v) = top.remove(&k) {
                    if !flat {
                        self.fire(format!("envelope: top-level `{k}` moved into the payload"));
                    }
                    payload.entry(k).or_insert(v);
                }
            }
            top.insert("payload".into(), Value::Object(payload));
        }
        // The payload rules of the type.
        if let (Some(rules), Some(Value::Object(payload))) =
            (inbound.events.get(&kind), top.get_mut("payload"))
        {
            for (from, to) in &rules.rename {
                if let Some(v) = take_path(payload, from) {
                    put_path(payload, to, v);
                    self.fire(format!("rename: {kind}.{from} → {to}"));
                }
            }
            for (field, inner) in &rules.pick {
                if let Some(Value::Object(object)) = get_path(payload, field)
                    && let Some(v) = get_path(object, inner).cloned()
                {
                    put_path(payload, field, v);
                    self.fire(format!("pick: {kind}.{field} object → its {inner}"));
                }
            }
            for (field, map) in &rules.values {
                let Some(current) = get_path(payload, field) else {
                    continue;
                };
                let text = match current {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(to) = map.get(&text) {
                    put_path(payload, field, to.clone());
                    self.fire(format!("value: {kind}.{field} {text} → {to}"));
                }
            }
            self.fill(payload, &rules.defaults, |field, v| {
                format!("default: {kind}.{field} = {v}")
            });
            for when in &rules.when {
                if get_path(payload, &when.field) == Some(&when.equals) {
                    self.fill(payload, &when.defaults, |field, _| {
                        format!(
                            "default: {kind}.{field} when {} = {}",
                            when.field, when.equals
                        )
                    });
                }
            }
        }
        // The error code, through the table; an unmapped one passes through.
        if !inbound.error_codes.is_empty()
            && kind == "error"
            && let Some(Value::Object(payload)) = top.get_mut("payload")
            && let Some(Value::String(code)) = payload.get("code").cloned()
        {
            if let Some(to) = inbound.error_codes.get(&code) {
                payload.insert("code".into(), Value::String(to.clone()));
                self.fire(format!("error code: {code} → {to}"));
            } else if !CANONICAL_CODES.contains(&code.as_str()) {
                // Kept verbatim in `wire_code`; `code` gets its snake_case form, so that the
                // schema judges the frame and a step names what came.
                let snake = snake_case(&code);
                if snake != code {
                    payload.insert("code".into(), Value::String(snake));
                    payload.insert("wire_code".into(), Value::String(code.clone()));
                }
                self.fire(format!(
                    "error code: {code} unmapped, passed through verbatim"
                ));
            }
        }
        // The timestamp.
        if inbound.convert_timestamps
            && let Some(ts) = top.get("timestamp")
            && let Some((converted, rule)) = convert_timestamp(ts)
        {
            top.insert("timestamp".into(), Value::String(converted));
            self.fire(rule);
        }
        // The greeting's user id, cut short.
        if kind == "connection_established"
            && let Some(t) = &inbound.greeting_user_id
            && let Some(Value::Object(payload)) = top.get_mut("payload")
        {
            let shown: String = self.user.chars().take(t.keep).collect();
            let cut = format!("{shown}{}", t.suffix);
            if payload.get("user_id").and_then(Value::as_str) == Some(cut.as_str())
                && cut != self.user
            {
                payload.insert("user_id".into(), Value::String(self.user.clone()));
                self.fire(format!(
                    "greeting: user_id cut to {} characters + {:?}, compared on those",
                    t.keep, t.suffix
                ));
            }
        }
        if is_run {
            self.run_frame(&kind, &mut top);
        }
        if inbound.synthesize.contains(&Synthesized::EventId) && !top.contains_key("event_id") {
            top.insert(
                "event_id".into(),
                Value::String(format!("syn-{:016x}", fnv(raw))),
            );
            self.fire("synthesize: event_id (from the frame's bytes)");
        }
        Normalized::Frame(Value::Object(top))
    }

    /// The run's identity, `seq` and tool-call id, from and into the run's state.
    fn run_frame(&mut self, kind: &str, top: &mut Map<String, Value>) {
        let spec = self.dialect.spec.clone();
        let inbound = &spec.inbound;
        let Some(run_id) = top.get("run_id").map(|r| match r {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }) else {
            return;
        };
        let mut fired = Vec::new();
        let state = self.runs.entry(run_id).or_default();
        for field in &inbound.inherit {
            match top.get(field) {
                Some(Value::Null) | None => {
                    if let Some(v) = state.identity.get(field) {
                        top.insert(field.clone(), v.clone());
                        fired.push(format!("inherit: {field} from the run's earlier frames"));
                    } else {
                        top.remove(field);
                    }
                }
                Some(v) => {
                    state
                        .identity
                        .entry(field.clone())
                        .or_insert_with(|| v.clone());
                }
            }
        }
        if inbound.synthesize.contains(&Synthesized::Seq) && !top.contains_key("seq") {
            state.seq += 1;
            top.insert("seq".into(), state.seq.into());
            fired.push("synthesize: seq (counted per run on each connection)".to_owned());
        }
        let pairs = matches!(kind, "tool_executing" | "tool_completed");
        if pairs
            && inbound.synthesize.contains(&Synthesized::ToolCallId)
            && let Some(Value::Object(payload)) = top.get_mut("payload")
            && !payload.contains_key("tool_call_id")
        {
            let key: Vec<Option<String>> = inbound
                .pairing
                .iter()
                .filter(|f| *f != "run_id")
                .map(|f| {
                    payload.get(f).and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Null => None,
                        other => Some(other.to_string()),
                    })
                })
                .collect();
            let id = if kind == "tool_executing" {
                state.calls_opened += 1;
                let id = format!("syn-call-{}", state.calls_opened);
                state.open.push(OpenCall {
                    key,
                    id: id.clone(),
                });
                id
            } else {
                // The oldest open call the key matches; a field either side lacks matches all.
                let matches = |open: &OpenCall| {
                    open.key
                        .iter()
                        .zip(&key)
                        .all(|(a, b)| a.is_none() || b.is_none() || a == b)
                };
                match state.open.iter().position(matches) {
                    Some(i) => state.open.remove(i).id,
                    None => {
                        state.unpaired += 1;
                        format!("syn-unpaired-{}", state.unpaired)
                    }
                }
            };
            payload.insert("tool_call_id".into(), Value::String(id));
            fired.push(format!(
                "synthesize: tool_call_id (paired by {})",
                inbound.pairing.join(" + ")
            ));
        }
        for rule in fired {
            self.fire(rule);
        }
    }

    /// Set each of `defaults` (dotted paths) that `payload` lacks, firing the rule `rule` names.
    fn fill(
        &self,
        payload: &mut Map<String, Value>,
        defaults: &Map<String, Value>,
        rule: impl Fn(&str, &Value) -> String,
    ) {
        for (field, v) in defaults {
            if get_path(payload, field).is_none() {
                put_path(payload, field, v.clone());
                self.fire(rule(field, v));
            }
        }
    }

    /// Count `rule` as applied to the frame being normalized.
    fn fire(&self, rule: impl Into<String>) {
        self.pending.borrow_mut().push(rule.into());
    }
}

/// A non-canonical timestamp as RFC 3339 UTC with `Z`, and the rule that converted it: float
/// (or integer) seconds since the epoch, or RFC 3339 with another offset. `None` when it is
/// canonical already, or cannot be read (the schema then reports it as it came).
fn convert_timestamp(ts: &Value) -> Option<(String, &'static str)> {
    use time::format_description::well_known::Rfc3339;
    match ts {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            // Float seconds hold about microseconds: finer digits are noise of the float.
            let nanos = (secs * 1e6).round() as i128 * 1000;
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
            Some((
                at.format(&Rfc3339).ok()?,
                "timestamp: seconds since the epoch → RFC 3339",
            ))
        }
        Value::String(s) if !s.ends_with('Z') => {
            let at = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
            Some((
                at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok()?,
                "timestamp: RFC 3339 offset → UTC Z",
            ))
        }
        _ => None,
    }
}

/// `code` in snake_case: lowercase ASCII letters and digits, `_` for anything else, a leading
/// `e_` when it would not start with a letter.
fn snake_case(code: &str) -> String {
    let mut out: String = code
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "e_");
    }
    out
}

/// FNV-1a of `text`: a synthesized `event_id` that a frame delivered twice repeats.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The value at a dotted `path` of `object`.
fn get_path<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = object.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Remove and return the value at a dotted `path` of `object`.
fn take_path(object: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => object.remove(path),
        Some((head, rest)) => take_path(object.get_mut(head)?.as_object_mut()?, rest),
    }
}

/// Put `value` at a dotted `path` of `object`, creating the objects on the way; a non-object
/// on the way is left alone (and the value dropped), so the schema reports the frame as it is.
fn put_path(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = object
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                put_path(inner, rest, value);
            }
        }
    }
}
