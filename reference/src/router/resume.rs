//! `resume` → the frames of a run the client missed, then the rest of it, or an
//! `error` frame, code `resume_unavailable`. The replay window and the following are
//! `replay.rs`'s; this module reads the message and answers it.

use goldenpath_spec::ErrorCode;
use serde::Deserialize;

use super::{Refusal, Sender};

/// A `resume` frame, its schema already checked.
#[derive(Debug, Deserialize)]
pub(crate) struct Resume {
    id: Option<String>,
    payload: Payload,
}

#[derive(Debug, Deserialize)]
struct Payload {
    run_id: String,
    last_seq: u64,
}

pub(super) fn handle(resume: Resume, sender: &Sender<'_>) {
    let shared = sender.shared;
    let Resume { id, payload } = resume;
    // Where the replay starts: right after the last frame the client saw.
    let from = shared.broadcast.replay_from(payload.last_seq);
    let refusal = move |e: crate::replay::Unavailable| {
        let mut r = Refusal::new(ErrorCode::ResumeUnavailable, e.to_string());
        r.request_type = Some("resume".to_owned());
        r.request_id = id.filter(|id| !id.is_empty());
        r
    };
    match &shared.bus {
        None => {
            let replay = &shared.replay;
            if let Err(e) = replay.resume_here(
                from,
                sender.user,
                sender.conn,
                &payload.run_id,
                payload.last_seq,
            ) {
                sender.refuse(&refusal(e));
            }
        }
        Some(bus) => {
            // Reading the window is a round trip to Redis: the connection's loop goes on.
            let (bus, owned) = (bus.clone(), sender.detach());
            shared.tasks.spawn(async move {
                let window = async {
                    let key = crate::replay::key(&payload.run_id);
                    bus.lrange(&key).await.ok()
                };
                let served = owned
                    .shared
                    .replay
                    .resume_on(
                        window,
                        from,
                        &owned.user,
                        &owned.conn,
                        &payload.run_id,
                        payload.last_seq,
                    )
                    .await;
                if let Err(e) = served {
                    owned.sender().refuse(&refusal(e));
                }
            });
        }
    }
}
