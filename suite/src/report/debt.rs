//! A dialect's migration debt in a report: the rules the run needed, the capabilities it
//! lacks, and per message type what had to be mapped.

use serde::{Deserialize, Serialize};

/// A mapping rule of a dialect and how often the run needed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    /// The rule, e.g. `alias: type error_message → error`.
    pub rule: String,
    /// How many times it fired.
    pub count: u64,
}

/// A capability the dialect lacks, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LackReport {
    /// The capability, e.g. `seq`.
    pub capability: String,
    /// The requirements reported `skip` for it.
    pub requirements: Vec<String>,
    /// Why.
    pub reason: String,
}

/// The non-canonical dialect a report's verdicts were reached through, and its migration
/// debt: the mapping rules the run needed and the capabilities the dialect lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialectReport {
    /// The dialect's name, e.g. `netra-legacy`.
    pub name: String,
    /// Where it came from: `built-in NAME` or a file path.
    pub origin: String,
    /// The migration debt: how many distinct rules fired plus how many capabilities are lacked.
    pub debt: usize,
    /// The rules that fired, with how often, by rule.
    pub rules: Vec<RuleCount>,
    /// The capabilities lacked.
    pub lacks: Vec<LackReport>,
    /// Frames received through the dialect (every type).
    #[serde(default)]
    pub frames: u64,
    /// Of those, frames no rule touched: `native / frames` is the share a migration drives to
    /// one.
    #[serde(default)]
    pub native: u64,
    /// The same, by message type as it came on the wire (then `sent TYPE` for what the suite
    /// sent), with the rules applied to that type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_type: Vec<TypeDebtReport>,
}

/// How the frames of one message type fared through the dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDebtReport {
    /// The type as it came on the wire, or `sent TYPE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Frames of this type.
    pub frames: u64,
    /// Of those, frames no rule touched.
    pub native: u64,
    /// The rules applied to frames of this type, with how often.
    pub rules: Vec<RuleCount>,
}

impl DialectReport {
    /// The share of received frames that needed no rule, in percent (100 when none came).
    pub fn native_percent(&self) -> f64 {
        if self.frames == 0 {
            100.0
        } else {
            self.native as f64 * 100.0 / self.frames as f64
        }
    }
}
