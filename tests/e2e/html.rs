//! `--html` and `--summary-md` from a run that fails: the page opened in a real headless
//! Chromium (driven over the DevTools protocol) shows the summary and a failing transcript,
//! and its console stays clean.

use crate::common::{RUN_LIMIT, Reference, goldenpath, scratch};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// The bound on each wait on the browser.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// A reference router that broadcasts every run to every user (`TenantBroadcast`), on
/// 127.0.0.1:0; stops when the sender is dropped.
async fn leaking_reference(secret: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = goldenpath_reference::Config::new(secret)
        .with_fault(goldenpath_reference::Fault::TenantBroadcast);
    tokio::spawn(goldenpath_reference::serve(listener, config, async {
        let _ = stopped.await;
    }));
    (format!("ws://{addr}/ws"), stop)
}

#[tokio::test]
async fn the_html_report_of_a_failing_run_shows_its_summary_and_transcripts_in_chromium() {
    let dir = scratch("html");
    let (url, _stop) = leaking_reference("html-secret").await;
    let html = dir.join("report.html");
    let md = dir.join("summary.md");
    // The baseline: the same selection against a clean reference.
    let clean = Reference::start("html-secret").await;
    let baseline = dir.join("baseline.json");
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &clean.ws(),
        "--jwt-secret",
        "html-secret",
        "--only",
        "GP-ISO-002",
        "--json",
        baseline.to_str().unwrap(),
    ])
    .await;
    // Narrowed by --only: PARTIAL (exit 5), nothing failed.
    assert_eq!(code, 5, "stdout:\n{out}\nstderr:\n{err}");
    let baseline = baseline.to_str().unwrap();
    let (code, out, err) = goldenpath(&[
        "check",
        "--url",
        &url,
        "--jwt-secret",
        "html-secret",
        "--only",
        "GP-ISO-002",
        "--baseline",
        baseline,
        "--html",
        html.to_str().unwrap(),
        "--summary-md",
        md.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(
        summary.contains("### goldenpath: NOT CONFORMANT")
            && summary.contains("| GP-ISO-002 | MUST | fail |")
            && summary.contains("**new failures** GP-ISO-002"),
        "{summary}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("<script") && !page.contains("http://") && !page.contains("src="),
        "the page is self-contained"
    );
    assert!(
        page.contains("class=\"leak-matrix\""),
        "a leak matrix table"
    );

    let seen = open_in_chromium(&html, &dir.join("chromium")).await;
    assert_eq!(seen.console_errors, Vec::<String>::new(), "console errors");
    let r = &seen.result;
    assert_eq!(r["headline"], "NOT CONFORMANT", "{r}");
    assert_eq!(r["summaryVisible"], true, "{r}");
    assert!(r["summaryText"].as_str().unwrap().contains("ISO"), "{r}");
    assert_eq!(r["foldedHidden"], true, "a transcript is folded: {r}");
    assert_eq!(
        r["transcriptVisible"], true,
        "an opened transcript shows: {r}"
    );
    assert!(
        r["transcriptText"]
            .as_str()
            .unwrap()
            .contains("agent_started"),
        "{r}"
    );
    assert_eq!(r["newFailure"], "GP-ISO-002", "{r}");
}

/// What the page showed.
struct Seen {
    /// Console errors, uncaught exceptions and failed loads.
    console_errors: Vec<String>,
    /// The probe's answer.
    result: Value,
}

/// Checks the page makes in the browser: what is visible before and after unfolding the first
/// transcript.
const PROBE: &str = r#"(() => {
  const d = document.querySelector('details.transcript');
  const pre = d && d.querySelector('pre');
  const foldedHidden = !!pre && !pre.checkVisibility();
  if (d) d.open = true;
  const summary = document.querySelector('#summary + table');
  const newFailure = [...document.querySelectorAll('#baseline ~ table td.new-failure')]
    .map(td => td.previousElementSibling.innerText)[0];
  return {
    headline: document.getElementById('headline').innerText,
    summaryVisible: !!summary && summary.checkVisibility(),
    summaryText: summary ? summary.innerText : '',
    foldedHidden,
    transcriptVisible: !!pre && pre.checkVisibility(),
    transcriptText: pre ? pre.innerText.slice(0, 2000) : '',
    newFailure,
  };
})()"#;

/// Open `page` in headless Chromium, wait for it to load, run [`PROBE`] and collect the
/// console's errors.
async fn open_in_chromium(page: &Path, profile: &Path) -> Seen {
    let browser = std::env::var("GOLDENPATH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut child = tokio::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {browser}: {e} (apt-get install -y chromium; .ci/run does)")
        });
    // Chromium says where its DevTools endpoint listens on stderr.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let endpoint = tokio::time::timeout(BROWSER_WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("ws://") {
                return line[at..].trim().to_owned();
            }
        }
        panic!("chromium exited without a DevTools endpoint");
    })
    .await
    .expect("chromium announces its DevTools endpoint");
    // Keep draining stderr so that chromium never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let (mut ws, _) = tokio::time::timeout(
        BROWSER_WAIT,
        tokio_tungstenite::connect_async(endpoint.as_str()),
    )
    .await
    .expect("DevTools connects in time")
    .expect("DevTools connects");
    let mut next_id = 0u64;
    let mut errors = Vec::new();
    let mut session: Option<String> = None;
    // Send a command and wait for its answer, collecting the events that come meanwhile.
    macro_rules! call {
        ($method:expr, $params:expr) => {{
            next_id += 1;
            let mut msg = json!({"id": next_id, "method": $method, "params": $params});
            if let Some(s) = &session {
                msg["sessionId"] = json!(s);
            }
            ws.send(Message::text(msg.to_string())).await.unwrap();
            wait(&mut ws, &mut errors, |m| m["id"] == next_id).await
        }};
    }
    let target = call!("Target.createTarget", json!({"url": "about:blank"}));
    let target_id = target["result"]["targetId"].clone();
    let attached = call!(
        "Target.attachToTarget",
        json!({"targetId": target_id, "flatten": true})
    );
    session = Some(attached["result"]["sessionId"].as_str().unwrap().to_owned());
    for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
        call!(domain, json!({}));
    }
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    call!("Page.navigate", json!({ "url": url }));
    wait(&mut ws, &mut errors, |m| {
        m["method"] == "Page.loadEventFired"
    })
    .await;
    let answer = call!(
        "Runtime.evaluate",
        json!({"expression": PROBE, "returnByValue": true})
    );
    let result = answer["result"]["result"]["value"].clone();
    assert!(result.is_object(), "the probe ran: {answer}");
    let _ = call!("Browser.close", json!({}));
    let _ = tokio::time::timeout(RUN_LIMIT, child.wait()).await;
    Seen {
        console_errors: errors,
        result,
    }
}

/// Read DevTools messages until one matches, noting console errors, exceptions and failed
/// loads on the way.
async fn wait<S>(ws: &mut S, errors: &mut Vec<String>, done: impl Fn(&Value) -> bool) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(BROWSER_WAIT, async {
        while let Some(msg) = ws.next().await {
            let Ok(Message::Text(text)) = msg else {
                continue;
            };
            let m: Value = serde_json::from_str(&text).unwrap();
            match m["method"].as_str() {
                Some("Runtime.exceptionThrown") => errors.push(m["params"].to_string()),
                Some("Runtime.consoleAPICalled") if m["params"]["type"] == "error" => {
                    errors.push(m["params"].to_string())
                }
                Some("Log.entryAdded") if m["params"]["entry"]["level"] == "error" => {
                    errors.push(m["params"]["entry"].to_string())
                }
                _ => {}
            }
            assert!(m.get("error").is_none(), "DevTools refused a command: {m}");
            if done(&m) {
                return m;
            }
        }
        panic!("DevTools closed");
    })
    .await
    .expect("chromium answers in time")
}
