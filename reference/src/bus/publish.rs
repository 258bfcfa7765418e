//! Publishing run frames: the instance that plays a run publishes each of its frames on the
//! owner's channel, in order, a pipeline at a time.

use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BATCH, COMMAND_TIMEOUT, Outgoing, RedisBus, lock};
use crate::broadcast::{Header, Publish};

impl Publish for RedisBus {
    fn epoch(&self) -> u64 {
        RedisBus::epoch(self)
    }

    fn alive(&self, epoch: u64) -> bool {
        RedisBus::alive(self, epoch)
    }

    /// Queue a run frame for publishing on its owner's channel. `false` when it cannot be: the
    /// connection of `epoch` is gone, or the publisher is too far behind.
    fn publish(&self, epoch: u64, header: Header<'_>, frame: &str) -> bool {
        if !self.alive(epoch) {
            return false;
        }
        let channel = self.channels.channel(header.user);
        let payload = format!(
            "{}\t{}\t{}\t{}\t{}\n{frame}",
            header.run_id,
            header.thread,
            header.seq,
            u8::from(header.terminal),
            header.user
        );
        let sent = self.outbox.try_send(Outgoing {
            epoch,
            channel,
            payload,
        });
        if sent.is_err() {
            tracing::warn!("the Redis publisher is behind: a run is cut short");
        }
        sent.is_ok()
    }
}

impl RedisBus {
    /// Publish queued frames in order, a pipeline at a time.
    pub(super) async fn publish_loop(
        self: Arc<Self>,
        mut inbox: mpsc::Receiver<Outgoing>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = inbox.recv_many(&mut batch, BATCH) => n,
            };
            if received == 0 {
                return;
            }
            let epoch = self.epoch();
            let link = lock(&self.link).clone();
            let Some(mut link) = link else {
                batch.clear();
                continue;
            };
            let mut pipe = redis::pipe();
            for out in batch.drain(..).filter(|o| o.epoch == epoch) {
                crate::replay::hold_in_redis(&mut pipe, &out.payload);
                pipe.publish(out.channel, out.payload).ignore();
            }
            let sent =
                tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut link.conn));
            if !matches!(sent.await, Ok(Ok(()))) && self.alive(epoch) {
                self.broken.notify_one();
            }
        }
    }
}
