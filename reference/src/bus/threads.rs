//! Thread ownership on Redis: a key per thread, `gp:thread:<id>` → owner, so that every
//! instance refuses a thread its sender does not own.

use super::{BusDown, COMMAND_TIMEOUT, RedisBus, THREAD_TTL_S};

impl RedisBus {
    /// The owner of `thread`, if Redis knows one.
    pub(crate) async fn thread_owner(&self, thread: &str) -> Result<Option<String>, BusDown> {
        let mut conn = self.command_link()?;
        let key = format!("gp:thread:{thread}");
        let got = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn),
        )
        .await;
        match got {
            Ok(Ok(owner)) => Ok(owner),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }

    /// Record `thread` as owned by `owner`.
    pub(crate) async fn create_thread(&self, owner: &str, thread: &str) -> Result<(), BusDown> {
        let mut conn = self.command_link()?;
        let key = format!("gp:thread:{thread}");
        let set = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("EX")
                .arg(THREAD_TTL_S)
                .query_async::<()>(&mut conn),
        )
        .await;
        match set {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BusDown(e.to_string())),
            Err(_) => Err(BusDown("no answer".into())),
        }
    }
}
