//! The faults of several instances on Redis that live in the Redis path itself, decorating its
//! seam (`bus::Channels`): `global-channel`. (`local-delivery-only` decorates the outbound seam,
//! `thread-ownership-per-instance` the inbound one.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Fault;
use crate::bus::{Channels, Published};
use crate::registry::{ConnHandle, Registry};

/// The channel every instance listens on.
const GLOBAL_CHANNEL: &str = "gp:all";

/// The Redis path under `fault`: `plain` unless the fault lives there.
pub(super) fn decorate(fault: Fault, plain: Arc<dyn Channels>) -> Arc<dyn Channels> {
    match fault {
        Fault::GlobalChannel => Arc::new(Global::default()),
        _ => plain,
    }
}

/// Run frames on one channel all instances share, filtered on receipt.
#[derive(Default)]
struct Global {
    slot: Mutex<GlobalSlot>,
}

impl Channels for Global {
    fn channel(&self, _user: &str) -> String {
        GLOBAL_CHANNEL.to_owned()
    }

    fn recipients(&self, registry: &Registry, frame: &Published<'_>) -> Option<Vec<ConnHandle>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        Some(slot.receive(registry, frame))
    }
}

/// The filter on receipt: one recipient list for the runs in flight on the
/// instance, added to at each run's first frame and emptied only when no run is in flight. A
/// run that starts while another user's is in flight goes to both users, whole.
#[derive(Default)]
struct GlobalSlot {
    recipients: Vec<ConnHandle>,
    runs: HashMap<String, Vec<ConnHandle>>,
}

impl GlobalSlot {
    fn receive(&mut self, registry: &Registry, message: &Published<'_>) -> Vec<ConnHandle> {
        if message.seq == 1 {
            for conn in registry.connections(message.user) {
                if !self.recipients.iter().any(|c| c.id == conn.id) {
                    self.recipients.push(conn);
                }
            }
            if self.recipients.is_empty() {
                return Vec::new();
            }
            self.runs
                .insert(message.run_id.to_owned(), self.recipients.clone());
        }
        let targets = self.runs.get(message.run_id).cloned().unwrap_or_default();
        if message.terminal {
            self.runs.remove(message.run_id);
            if self.runs.is_empty() {
                self.recipients.clear();
            }
        }
        targets
    }
}
