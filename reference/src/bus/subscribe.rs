//! Following the channels of the users with local connections: an instance listens on a
//! user's channel while it holds a connection of that user.

use std::sync::Arc;

use super::{COMMAND_TIMEOUT, RedisBus, lock};

impl RedisBus {
    /// A local connection of `user` opened: subscribe to the user's channel (confirmed before
    /// this returns) unless another local connection of the user already did. Dropping the
    /// guard gives the subscription back.
    pub(crate) async fn join(self: &Arc<Self>, user: &Arc<str>) -> Joined {
        let channel = self.channels.channel(user);
        let mut subs = self.subs.lock().await;
        let count = subs.entry(channel.clone()).or_default();
        *count += 1;
        if *count == 1 {
            let link = lock(&self.link).clone();
            if let Some(mut link) = link {
                let subscribed =
                    tokio::time::timeout(COMMAND_TIMEOUT, link.sink.subscribe(&channel)).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    // Subscribed again on reconnection.
                    tracing::warn!(%user, "could not subscribe to the user's channel");
                }
            }
        }
        Joined {
            bus: self.clone(),
            channel,
        }
    }
}

/// A local connection's hold on its user's channel; dropping it lets the channel go when it
/// was the user's last local connection.
pub(crate) struct Joined {
    bus: Arc<RedisBus>,
    channel: String,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let (bus, channel) = (self.bus.clone(), std::mem::take(&mut self.channel));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut subs = bus.subs.lock().await;
            let Some(count) = subs.get_mut(&channel) else {
                return;
            };
            *count -= 1;
            if *count > 0 {
                return;
            }
            subs.remove(&channel);
            let link = lock(&bus.link).clone();
            if let Some(mut link) = link {
                let _ =
                    tokio::time::timeout(COMMAND_TIMEOUT, link.sink.unsubscribe(&channel)).await;
            }
        });
    }
}
