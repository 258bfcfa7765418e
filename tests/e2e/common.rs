//! Running the binary with a bounded wait, and a reference router in-process.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;
use tokio::process::Command;

/// The longest any one run of the binary may take in these tests.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Run `goldenpath` with `args`; its exit code, stdout and stderr.
pub async fn goldenpath(args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_goldenpath"));
    command
        .args(args)
        .kill_on_drop(true)
        .env_remove("GOLDENPATH_JWT_SECRET");
    let output: Output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("goldenpath {args:?} ran over {RUN_LIMIT:?}"))
        .expect("the binary runs");
    let code = output.status.code().unwrap_or(-1);
    (
        code,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A reference router on 127.0.0.1:0 with dev tokens; stops when dropped.
pub struct Reference {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Reference {
    pub async fn start(secret: &str) -> Reference {
        Reference::start_with(goldenpath_reference::Config::new(secret)).await
    }

    /// The reference with `config` (dev tokens on).
    pub async fn start_with(config: goldenpath_reference::Config) -> Reference {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = config.with_dev_tokens(true);
        tokio::spawn(goldenpath_reference::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Reference { addr, _stop: stop }
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// A fresh temporary directory for report files.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("goldenpath-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
