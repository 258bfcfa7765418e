//! Deliberately broken behaviour, to prove the conformance suite can tell right from wrong.
//!
//! Each [`Fault`] is one realistic bug of the kind legacy chat routers had, switched on with
//! [`Config::with_fault`](crate::Config::with_fault) or `goldenpath serve --fault NAME`. A fault
//! is a decorator of one of the reference's seams (`crate::seams`): it transforms the tokens,
//! frames or agent steps that pass through that seam and leaves the rest to the plain
//! behaviour. One file per seam decorated:
//!
//! | file | seam | faults |
//! |---|---|---|
//! | `auth.rs` | token validation | the authentication faults |
//! | `lifecycle.rs` | upgrade, WebSocket settings, shutdown | handshake and deploy faults |
//! | `inbound.rs` | the router's inbound path | refusal, close and thread faults |
//! | `agent.rs` | the agent's directive and steps | run-shape faults |
//! | `outbound.rs` | every frame on its way to a tab | delivery, ordering, `seq`, wire faults |
//! | `bus.rs` | the Redis path | the faults of several instances |
//!
//! [`seams`] is the layer's one entry: the seams of a server built from a `Config`, decorated by
//! its fault. The requirements each fault breaks are data, `breaks.toml` ([`Fault::breaks`]):
//! the faulty-server matrix (`tests/faults.rs`) checks that the runner fails exactly those, and
//! `KILL_MATRIX.md` is generated from it.
//!
//! This module exists only with the `faults` Cargo feature: without it, the reference carries no
//! trace of the catalogue.

mod agent;
mod auth;
mod bus;
mod inbound;
mod lifecycle;
mod outbound;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::Config;
use crate::seams::Seams;

/// The seams of a server built from `config`: plain, or decorated by `config`'s fault.
pub(crate) fn seams(config: &Config) -> Seams {
    let plain = Seams::plain(config);
    let Some(fault) = config.fault else {
        return plain;
    };
    Seams {
        auth: Arc::new(auth::Faulty::new(fault, config)),
        lifecycle: Arc::new(lifecycle::Faulty(fault)),
        routing: Arc::new(inbound::Faulty::new(fault)),
        agent: Arc::new(agent::Faulty(fault)),
        outbound: Arc::new(outbound::Faulty::new(fault)),
        channels: bus::decorate(fault, plain.channels),
    }
}

/// One deliberately broken behaviour of the reference router.
///
/// The kebab-case name (`--fault NAME`) is the variant's name: `Fault::TenantBroadcast` is
/// `tenant-broadcast`. Each variant's documentation says the legacy bug it imitates; the
/// requirements it breaks, and why the less obvious ones are broken too, are in `breaks.toml`
/// ([`Fault::breaks`]). The seam each decorates is the section it is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    // ---- connection and handshake (lifecycle, inbound, outbound) --------------------------------------------------------
    /// A second tab of a user is refused (HTTP 429): the router kept one socket per user.
    SingleConnectionPerUser,
    /// `connection_established` names the connection id where the user id belongs.
    GreetingWrongUser,
    /// `connection_established` reports a per-user session id, shared by all of a user's tabs,
    /// as the `connection_id`.
    SharedConnectionId,
    /// A client's close frame is not answered: the socket is dropped without the closing
    /// handshake.
    NoCloseReply,
    /// The handshake selects the token-bearing subprotocol entry `bearer.<jwt>`, echoing the
    /// token in a response header.
    EchoBearerSubprotocol,
    /// `connection_established` leaves out `max_frame_bytes`.
    GreetingWithoutLimits,
    /// A text frame that is not UTF-8 is closed with 1002, like any protocol violation, not
    /// with 1007.
    Utf8AsProtocolError,
    /// Unmasked client frames are accepted (the transport's check switched off for a proxy
    /// that strips masks) instead of closed with 1002.
    AcceptUnmaskedFrames,
    /// A frame over the transport's hard limit drops the socket without a close frame (1009).
    OversizeDropped,
    /// A non-JSON text keepalive (`keepalive`) follows the greeting, socket.io style.
    TextKeepalive,

    // ---- authentication ---------------------------------------------------------------------
    /// A connection without a token is let in as the user `anonymous`.
    AcceptMissingToken,
    /// A token that does not parse as a JWT is let in as a guest (`anonymous`).
    AcceptMalformedToken,
    /// `exp` is not checked.
    AcceptExpiredToken,
    /// A token whose signature does not verify is trusted anyway: the verification error was
    /// logged, not returned.
    AcceptWrongSignature,
    /// A token with `alg: none` is decoded and trusted without a signature.
    AcceptAlgNone,
    /// `aud` is not checked.
    IgnoreAudience,
    /// `iss` is not checked.
    IgnoreIssuer,
    /// The `token` query parameter is not read, so browsers cannot connect.
    IgnoreQueryToken,
    /// Tokens are accepted up to ten minutes after `exp`: the leeway was raised for a clock
    /// that drifted once.
    AcceptStaleToken,
    /// `nbf` is not checked: a token minted for later works now.
    IgnoreNotBefore,
    /// A token without `sub` is let in as `anonymous`.
    AcceptTokenWithoutSub,
    /// With an issuer and an audience configured, a token lacking `iss` or `aud` is let in:
    /// they are checked only when present.
    AcceptMissingIssuerAudience,
    /// A token in the `token` query parameter is read without verification: the browser path
    /// was added later, beside the checked header path.
    QueryTokenUnverified,
    /// A refused upgrade gets a bare `401 Unauthorized` with a text body and no reason.
    RefusalWithoutReason,

    // ---- routing client frames --------------------------------------------------------------
    /// One `user_message` starts two runs: its handler was registered twice.
    DoubleRun,
    /// A text frame that is not JSON closes the connection (1011): the parse error escaped
    /// the handler.
    CloseOnMalformedJson,
    /// JSON that is not an object is answered with `invalid_json`, not `not_an_object`.
    WrongCodeForNonObject,
    /// A frame of an unknown `type` is dropped without an answer: the dispatcher's `match`
    /// ends in `_ => {}`.
    IgnoreUnknownType,
    /// Client frames are not validated against their schema; whatever deserializes is
    /// accepted (empty content starts a run), the rest gets `internal_error`.
    SkipSchemaValidation,
    /// A binary frame is decoded as UTF-8 and routed like a text frame.
    BinaryAsText,
    /// `max_frame_bytes` is advertised but not enforced.
    NoFrameLimit,
    /// After a refused frame the session is flagged as errored and the flag is never cleared:
    /// the connection still answers pings but starts no run any more.
    ErrorPoisonsConnection,
    /// `error` frames never echo the refused frame's `id` as `request_id`.
    ErrorWithoutRequestId,

    // ---- isolation --------------------------------------------------------------------------
    /// Run frames go to every connection of the owner's tenant (the user id up to its last
    /// `-`), the room a legacy router joined instead of the user's.
    TenantBroadcast,
    /// A run reaches only the owner's first connection: a user → socket map kept one socket.
    OneTabOnly,
    /// Writing to a tab that closed aborts the run: the other tabs never see the rest of it.
    TabCloseStopsRun,
    /// `thread_id` is trusted: a user can post into anyone's thread, or one that does not
    /// exist.
    PostIntoAnyThread,
    /// A `user_id` in the payload is taken as the run's owner.
    IdentityFromPayload,
    /// Every message opens a new thread, even one that names the sender's own thread.
    NewThreadEveryMessage,
    /// A `thread_id` naming a thread the server created is refused as `thread_not_found`, even
    /// to its owner: only client-created threads were looked up.
    ServerThreadsNotReusable,
    /// The agent's final answer ends with the content of the latest message any user sent: a
    /// process-wide "last prompt" variable.
    LeakContent,

    // ---- the run's sequence -----------------------------------------------------------------
    /// The agent never emits `agent_started`.
    OmitAgentStarted,
    /// `agent_started` does not echo the message's `id` as `request_id`.
    AgentStartedWithoutRequestId,
    /// A run whose message carries no test directive has no thinking step and no tool call:
    /// the bridge to the real agent never emitted them.
    ToolEventsOnlyWithDirectives,
    /// The broadcaster's event allowlist lacks `tool_completed`.
    DropToolCompleted,
    /// A tool's `tool_completed` is published twice: the first publish timed out and was
    /// retried as a new event.
    RepeatToolCompleted,
    /// A tool call's id is derived from the tool's name, so two calls of one tool share it.
    ToolCallIdFromName,
    /// The run does not wait for its last tool call: the terminal event goes out first, the
    /// call's `tool_completed` after it.
    CompleteWithOpenTool,
    /// A late "thinking" event from a task that outlived the run follows the terminal event.
    FrameAfterTerminal,
    /// A clean-up `agent_thinking` follows the terminal event 300 ms later, from a task that
    /// outlived the run.
    LateFrameAfterTerminal,
    /// `seq` skips a number before the first `tool_executing`.
    SeqGap,
    /// `seq` is not advanced for the first `tool_completed`, which repeats the number before.
    SeqRepeat,
    /// The first `agent_thinking` is delivered after the frame that follows it.
    ReorderFrames,
    /// The first `agent_thinking` is delivered twice, the same bytes: an at-least-once
    /// queue redelivered it.
    DuplicateFrame,
    /// The first `agent_thinking` carries a fresh `run_id`, as if it were another run's.
    WrongRunId,
    /// The terminal event carries a fresh `thread_id`, as if the run ended in another thread.
    WrongThreadId,
    /// `event_id`s are counted per run (`e-1`, `e-2`...), so runs on one connection reuse them.
    EventIdPerRun,
    /// A failing tool call ends the run with `agent_error` at once; the calls after it never
    /// run.
    ToolErrorAbortsRun,
    /// A failing tool call is reported with `status` `ok` and its error as the result.
    ToolErrorReportedOk,
    /// A failing run is reported with `agent_completed`: the error was swallowed.
    FailRunCompletes,
    /// The agent thinks one step more than it was asked to.
    ExtraThinkingStep,
    /// The run never sends its terminal event.
    NeverFinish,
    /// A `resume` replays every frame of the run the server still holds, from its first, not
    /// those after the client's `last_seq`: the replay buffer was served whole, and the client
    /// gets frames it already had again.
    ResumeReplaysAll,

    // ---- the wire format --------------------------------------------------------------------
    /// `agent_started` is sent without `payload.agent_name`.
    SchemaMissingField,
    /// `agent_thinking`'s `payload.step` is a string (`"1"`), not an integer.
    SchemaWrongType,
    /// A legacy `agent_typing` indicator frame, a type spec v1 does not have, precedes each
    /// run.
    UnknownFrameType,

    // ---- heartbeat and liveness -------------------------------------------------------------
    /// An application `ping` is never answered.
    IgnorePing,
    /// A ping control frame is answered with an empty pong, not one carrying the ping's data.
    PongWrongData,
    /// A `pong` is sent 1.2 s after its `ping`, over the pong budget.
    SlowPong,
    /// `agent_started` comes 2.2 s after the `user_message`, over the first-event budget.
    LateFirstEvent,

    // ---- several instances on Redis (`serve --redis`; no effect without it) -----------------
    /// Run frames are published on one channel all instances share, and each instance filters
    /// on receipt into one recipient list for the runs in flight, added to at each run's first
    /// frame and emptied only when no run is in flight: a run that starts while another user's
    /// is in flight on the instance goes to both users.
    GlobalChannel,
    /// A run is delivered only to the owner's connections on the instance that plays it: the
    /// per-process broadcast was kept when the router was scaled out.
    LocalDeliveryOnly,
    /// Thread ownership is kept in each instance's memory: the owner is refused its own thread
    /// through any instance but the one that created it.
    ThreadOwnershipPerInstance,
    // ---- deploys (judged by `goldenpath load --restart-cmd`, not by `check`) ---------------
    /// On SIGTERM the process exits at once: no drain, no close 1001, the runs in flight cut.
    ExitWithoutDrain,
}

impl Fault {
    /// Every fault, in declaration order.
    pub fn all() -> &'static [Fault] {
        <Fault as clap::ValueEnum>::value_variants()
    }

    /// The kebab-case name, as `--fault` takes it.
    pub fn name(self) -> String {
        self.possible_value().get_name().to_owned()
    }

    /// The legacy bug the fault imitates, in one line (the variant's documentation).
    pub fn bug(self) -> String {
        self.possible_value()
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    fn possible_value(self) -> clap::builder::PossibleValue {
        clap::ValueEnum::to_possible_value(&self)
            .expect("every fault has a name: none is skipped with #[value(skip)]")
    }

    /// The fault named `name` (kebab-case).
    pub fn from_name(name: &str) -> Option<Fault> {
        <Fault as clap::ValueEnum>::from_str(name, false).ok()
    }

    /// The requirement ids the fault breaks: exactly the requirements the runner fails when
    /// the whole suite runs strictly (SHOULDs count) against the reference with this fault on.
    /// They are data, `reference/src/faults/breaks.toml`, where a comment says why wherever a
    /// fault breaks more than its headline requirement. Empty for a fault the file forgets
    /// (a test makes sure none is forgotten).
    pub fn breaks(self) -> &'static [&'static str] {
        breaks_table()
            .get(self.possible_value().get_name())
            .map_or(&[], Vec::as_slice)
    }

    /// Whether the fault lives on the Redis path only (`serve --redis`): it breaks nothing in a
    /// single process, and its requirements are checked against several instances on one Redis
    /// (`tests/scale.rs`).
    pub fn needs_redis(self) -> bool {
        matches!(
            self,
            Fault::GlobalChannel | Fault::LocalDeliveryOnly | Fault::ThreadOwnershipPerInstance
        )
    }
}

/// `breaks.toml`, read once: fault name → the ids it breaks.
fn breaks_table() -> &'static BTreeMap<String, Vec<&'static str>> {
    static TABLE: OnceLock<BTreeMap<String, Vec<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table: BTreeMap<String, Vec<String>> = toml::from_str(BREAKS)
            .unwrap_or_else(|e| panic!("reference/src/faults/breaks.toml: {e}"));
        table
            .into_iter()
            .map(|(name, ids)| {
                let ids = ids
                    .into_iter()
                    .map(|id| &*Box::leak(id.into_boxed_str()))
                    .collect();
                (name, ids)
            })
            .collect()
    })
}

/// The requirements each fault breaks, as data.
const BREAKS: &str = include_str!("breaks.toml");

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.possible_value().get_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_has_a_name_a_bug_and_requirements_of_the_catalogue() {
        let mut names = std::collections::HashSet::new();
        for &fault in Fault::all() {
            let name = fault.name();
            assert!(names.insert(name.clone()), "{name} twice");
            assert_eq!(Fault::from_name(&name), Some(fault));
            assert!(!fault.bug().is_empty(), "{name} says no bug");
            assert!(
                !fault.breaks().is_empty(),
                "{name} breaks nothing: give it an entry in breaks.toml"
            );
            for id in fault.breaks() {
                assert!(
                    goldenpath_spec::catalogue::requirement(id).is_some()
                        || goldenpath_spec::catalogue::load_requirement(id).is_some(),
                    "{name} declares {id}, which is no requirement"
                );
            }
            assert!(fault.breaks().is_sorted(), "{name}: list its ids in order");
        }
    }

    #[test]
    fn every_entry_of_breaks_toml_is_a_fault() {
        for name in breaks_table().keys() {
            assert!(
                Fault::from_name(name).is_some(),
                "breaks.toml names {name:?}, which is no fault"
            );
        }
    }
}
