//! The `error` frame's codes of spec v1, and the requirement that asks for each.
//!
//! The table of `schemas/README.md` ("Error codes") is their source: [`ErrorCode`] names each code
//! for code to use, and the requirement each answers is read from the table. The tests keep the
//! enum and the table equal, and the codes equal to those `schemas/error.json` documents.
//!
//! ```
//! use goldenpath_spec::ErrorCode;
//!
//! assert_eq!(ErrorCode::InvalidJson.as_str(), "invalid_json");
//! assert_eq!(ErrorCode::from_wire("thread_not_found"), Some(ErrorCode::ThreadNotFound));
//! assert_eq!(ErrorCode::ThreadNotFound.requirement(), "GP-ISO-004");
//! assert_eq!(ErrorCode::from_wire("nope"), None);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

/// The text of `schemas/README.md`, whose "Error codes" table this module reads.
const SCHEMAS_README: &str = include_str!("../../schemas/README.md");

/// An `error.payload.code` of spec v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// `invalid_json`: a text frame that is not JSON.
    InvalidJson,
    /// `not_an_object`: JSON that is not an object.
    NotAnObject,
    /// `unknown_type`: an object whose `type` is missing or not a client type.
    UnknownType,
    /// `invalid_message`: a known type that breaks its schema.
    InvalidMessage,
    /// `binary_not_supported`: a binary frame.
    BinaryNotSupported,
    /// `frame_too_large`: a text frame over the server's `max_frame_bytes`.
    FrameTooLarge,
    /// `thread_not_found`: a `thread_id` the sender does not own.
    ThreadNotFound,
    /// `internal_error`: the server failed; the connection stays usable.
    InternalError,
    /// `shutting_down`: a `user_message` while the server drains for a deploy; no run starts.
    ShuttingDown,
    /// `resume_unavailable`: a `resume` the server cannot serve whole (frames gone, unknown
    /// run, or another user's); nothing of the run is sent.
    ResumeUnavailable,
}

impl ErrorCode {
    /// Every code, in the table's order.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::InvalidJson,
        ErrorCode::NotAnObject,
        ErrorCode::UnknownType,
        ErrorCode::InvalidMessage,
        ErrorCode::BinaryNotSupported,
        ErrorCode::FrameTooLarge,
        ErrorCode::ThreadNotFound,
        ErrorCode::InternalError,
        ErrorCode::ShuttingDown,
        ErrorCode::ResumeUnavailable,
    ];

    /// The code as the wire carries it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::ThreadNotFound => "thread_not_found",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::ResumeUnavailable => "resume_unavailable",
        }
    }

    /// The code with this wire name, if spec v1 defines one.
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The id of the requirement that asks for this code (the table's third column).
    pub fn requirement(self) -> &'static str {
        table()
            .get(self.as_str())
            .map(|(_, requirement)| *requirement)
            .unwrap_or_else(|| panic!("schemas/README.md has no row for {self}"))
    }

    /// What causes it, as the table says.
    pub fn cause(self) -> &'static str {
        table()
            .get(self.as_str())
            .map(|(cause, _)| *cause)
            .unwrap_or_else(|| panic!("schemas/README.md has no row for {self}"))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// code → (cause, requirement), from the table between `<!-- error-codes:start -->` and
/// `<!-- error-codes:end -->`. Embedded and tested: a row this cannot read is a bug of this crate.
fn table() -> &'static BTreeMap<&'static str, (&'static str, &'static str)> {
    static TABLE: OnceLock<BTreeMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let (_, rest) = SCHEMAS_README
            .split_once("<!-- error-codes:start -->")
            .expect("schemas/README.md has <!-- error-codes:start -->");
        let (rows, _) = rest
            .split_once("<!-- error-codes:end -->")
            .expect("schemas/README.md has <!-- error-codes:end -->");
        rows.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                let [code, cause, requirement] = cells[..] else {
                    panic!("an error-code row has 3 cells (code, cause, requirement): {line}");
                };
                (code.trim_matches('`'), (cause, requirement))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enum_and_the_table_hold_the_same_codes_in_the_same_order() {
        let from_table: Vec<&str> = {
            let mut rows: Vec<(&str, usize)> = table()
                .keys()
                .map(|code| {
                    (
                        *code,
                        SCHEMAS_README.find(&format!("| `{code}` |")).unwrap_or(0),
                    )
                })
                .collect();
            rows.sort_by_key(|(_, at)| *at);
            rows.into_iter().map(|(code, _)| code).collect()
        };
        let from_enum: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(from_enum, from_table);
    }

    #[test]
    fn every_code_names_a_requirement_of_the_catalogue() {
        for code in ErrorCode::ALL {
            let id = code.requirement();
            assert!(
                crate::catalogue::requirement(id).is_some()
                    || crate::catalogue::load_requirement(id).is_some(),
                "{code}: {id} is not in features/README.md"
            );
            assert!(!code.cause().is_empty());
        }
    }

    #[test]
    fn error_json_documents_every_code() {
        let source = crate::schema::source(crate::MessageType::Error);
        for code in ErrorCode::ALL {
            assert!(
                source.contains(&format!("`{code}`")),
                "schemas/error.json lacks {code}"
            );
        }
    }
}
