//! Every frame is checked on arrival (`target::Conn`): GP-WIRE. These steps make a scenario
//! fail where it asks, with what the checks found as the message.

use cucumber::then;

use crate::checks::check;
use crate::world::{GoldenWorld, ensure};

#[then(
    regex = r"^every frame received (is a text frame holding one JSON object|is valid against its schema|has a server type of this spec version|has an event_id no other frame on its connection has)$"
)]
async fn every_frame(w: &mut GoldenWorld, property: String) {
    if w.then() {
        return;
    }
    let requirement = match property.as_str() {
        "is a text frame holding one JSON object" => check("wire.json-object"),
        "is valid against its schema" => check("wire.schema"),
        "has a server type of this spec version" => check("wire.server-type"),
        _ => check("wire.fresh-event-id"),
    };
    w.settle_all().await;
    let mut bad = Vec::new();
    for conn in w.conns.values().flatten().chain(&w.closed) {
        for f in conn
            .findings()
            .iter()
            .filter(|f| f.requirement == requirement)
        {
            bad.push(format!(
                "{}: expected {}; got {}",
                conn.label, f.expected, f.got
            ));
        }
    }
    ensure!(
        w,
        bad.is_empty(),
        requirement,
        "{} frame(s) broke it: {}",
        bad.len(),
        bad.iter().take(3).cloned().collect::<Vec<_>>().join(" | ")
    );
}
