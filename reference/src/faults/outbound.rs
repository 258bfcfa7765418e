//! The delivery, ordering, `seq`, wire and greeting faults, decorating the outbound seam
//! (`broadcast::Outbound`): the frames outside a run, the connections a run goes to, and each
//! run frame once stamped.

use goldenpath_spec::MessageType;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use super::Fault;
use crate::broadcast::{Ids, Outbound, RunFrame, RunFrames, RunOut, Wire};
use crate::registry::ConnHandle;

/// The plain way out, one fault changing it.
pub(super) struct Faulty {
    fault: Fault,
    /// Where the ids of the frames claiming another run or thread come from.
    ids: Arc<Ids>,
}

impl Faulty {
    pub(super) fn new(fault: Fault) -> Faulty {
        Faulty {
            fault,
            ids: Arc::new(Ids::new()),
        }
    }
}

impl Outbound for Faulty {
    fn direct(&self, wire: &Wire, conn: &ConnHandle, kind: MessageType, mut payload: Value) {
        use MessageType::{ConnectionEstablished, Error, Pong};
        match (self.fault, kind) {
            (Fault::GreetingWrongUser, ConnectionEstablished) => {
                payload["user_id"] = payload["connection_id"].clone();
            }
            (Fault::SharedConnectionId, ConnectionEstablished) => {
                let user = payload["user_id"].as_str().unwrap_or_default().to_owned();
                payload["connection_id"] = json!(format!("session-{user}"));
            }
            (Fault::GreetingWithoutLimits, ConnectionEstablished) => {
                remove(&mut payload, "max_frame_bytes")
            }
            (Fault::ErrorWithoutRequestId, Error) => remove(&mut payload, "request_id"),
            (Fault::IgnorePing, Pong) => return,
            (Fault::SlowPong, Pong) => {
                let (wire, conn) = (wire.clone(), conn.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                    wire.send(&conn, kind.as_str(), &payload);
                });
                return;
            }
            _ => {}
        }
        wire.send(conn, kind.as_str(), &payload);
        if self.fault == Fault::TextKeepalive && kind == ConnectionEstablished {
            conn.deliver("keepalive".into());
        }
    }

    fn open_run(&self, wire: &Wire, owner: &str) -> Vec<ConnHandle> {
        match self.fault {
            // The room a legacy router joined: the user id up to its last `-`.
            Fault::TenantBroadcast => {
                let tenant = |user: &str| user.rsplit_once('-').map_or("", |(t, _)| t).to_owned();
                let own = tenant(owner);
                wire.registry.connections_where(|user| tenant(user) == own)
            }
            Fault::OneTabOnly => {
                let mut targets = wire.registry.connections(owner);
                targets.truncate(1);
                targets
            }
            Fault::UnknownFrameType => {
                let targets = wire.registry.connections(owner);
                for conn in &targets {
                    wire.send(conn, "agent_typing", &json!({}));
                }
                targets
            }
            _ => wire.registry.connections(owner),
        }
    }

    fn over_bus(&self) -> bool {
        self.fault != Fault::LocalDeliveryOnly
    }

    fn replay_from(&self, last_seq: u64) -> u64 {
        if self.fault == Fault::ResumeReplaysAll {
            0
        } else {
            last_seq
        }
    }

    fn run_frames(&self) -> Box<dyn RunFrames> {
        Box::new(Run {
            fault: self.fault,
            ids: self.ids.clone(),
            held: None,
        })
    }
}

fn remove(payload: &mut Value, field: &str) {
    if let Some(p) = payload.as_object_mut() {
        p.remove(field);
    }
}

/// One run's frames under the fault.
struct Run {
    fault: Fault,
    ids: Arc<Ids>,
    /// A frame held back, to be delivered after the next one.
    held: Option<RunFrame>,
}

impl RunFrames for Run {
    fn frame(&mut self, mut frame: RunFrame, out: &mut RunOut<'_>) {
        let first_thinking = frame.seq == 2 && frame.kind == MessageType::AgentThinking;
        match self.fault {
            Fault::TabCloseStopsRun if out.any_tab_closed() => return out.abandon(),
            Fault::SeqGap if frame.seq >= 3 => frame.seq += 1,
            Fault::SeqRepeat if frame.seq >= 3 => frame.seq -= 1,
            Fault::WrongRunId if first_thinking => frame.run_id = self.ids.next("r"),
            Fault::WrongThreadId if frame.is_terminal() => frame.thread_id = self.ids.next("t"),
            Fault::EventIdPerRun => frame.event_id = format!("e-{}", frame.seq),
            Fault::ReorderFrames if first_thinking => {
                self.held = Some(frame);
                return;
            }
            Fault::ReorderFrames => {
                // The held frame goes after this one, before it if this one ends the run.
                if let Some(held) = self.held.take() {
                    let (before, after) = if frame.is_terminal() {
                        (&held, &frame)
                    } else {
                        (&frame, &held)
                    };
                    out.send(before);
                    out.send(after);
                    return;
                }
            }
            // An at-least-once queue redelivered it.
            Fault::DuplicateFrame if first_thinking => out.send(&frame),
            _ => {}
        }
        out.send(&frame);
    }
}

/// A run's frames stamped with another owner than the user whose connections receive them.
pub(super) struct Relabel(pub(super) Arc<str>);

impl RunFrames for Relabel {
    fn frame(&mut self, mut frame: RunFrame, out: &mut RunOut<'_>) {
        frame.owner = self.0.clone();
        out.send(&frame);
    }
}
