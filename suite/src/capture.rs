//! Captures: connection transcripts as JSON Lines, written by `goldenpath check --record DIR`
//! and read back by [`validate`](crate::validate()).
//!
//! A capture file holds one connection. Its first line may be a header naming the connection
//! (`{"capture": "goldenpath/1", "connection": "alice#1", "user": "…", "feature": "…",
//! "scenario": "…"}`); every other line is one frame:
//!
//! ```json
//! {"direction": "received", "t_ms": 12.5, "kind": "text", "frame": "{\"type\":\"pong\",…}"}
//! ```
//!
//! `direction` is `sent` or `received`; `t_ms` is monotonic milliseconds since the connection
//! opened; `kind` is `text`, `binary`, `close`, `ping`, `pong` or `event` (the connection
//! ended, failed); `frame` is the text frame as it went over the wire (tokens redacted), or a
//! description of a non-text frame (`<binary 3 bytes>`, `<close 1000>`). A log captured
//! elsewhere (staging, production) can be judged too: lines without a header or without `kind`
//! are read as text frames, and `frame` may be a JSON object instead of its text.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::report::{Direction, Frame, Transcript};

/// The format name in a capture's header line.
pub const FORMAT: &str = "goldenpath/1";

/// The first line of a capture file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub capture: String,
    /// The connection's label in its scenario, e.g. `alice#1`.
    pub connection: String,
    /// The user it authenticated as.
    pub user: String,
    /// The family of the scenario that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The scenario that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

/// What kind of WebSocket frame a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A text frame: `frame` is its text.
    Text,
    /// A binary frame: `frame` describes it.
    Binary,
    /// A close frame.
    Close,
    /// A ping control frame.
    Ping,
    /// A pong control frame.
    Pong,
    /// Not a frame: the connection ended or failed.
    Event,
}

impl Kind {
    /// The kind of a transcript frame, from the descriptions [`Conn`](crate::target::Conn)
    /// writes for what is not a text frame.
    fn of(frame: &str) -> Kind {
        let described = |prefix: &str| frame.starts_with(prefix) && frame.ends_with('>');
        if described("<binary ") {
            Kind::Binary
        } else if described("<close") {
            Kind::Close
        } else if described("<ping ") {
            Kind::Ping
        } else if described("<pong ") {
            Kind::Pong
        } else if described("<connection ") {
            Kind::Event
        } else {
            Kind::Text
        }
    }
}

/// One frame line of a capture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Which way the frame went.
    pub direction: Direction,
    /// Monotonic milliseconds since the connection opened.
    #[serde(default)]
    pub t_ms: f64,
    /// The kind of frame; a text frame when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The frame's text, or a description of a non-text frame.
    pub frame: Value,
}

impl Line {
    /// The frame's text: a string as it is, anything else as its JSON.
    pub fn text(&self) -> String {
        match &self.frame {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// A capture file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its header; for a file without one, a header named after the file.
    pub header: Header,
    /// Its frames, in order.
    pub lines: Vec<Line>,
}

/// A capture could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line is not a capture line.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing to judge.
    #[error("{0}: no capture file (*.jsonl) there")]
    Empty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file-name-safe form of `text`: lowercase letters, digits and dashes.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.chars().take(80).collect()
}

/// Write the transcripts of one scenario under `dir`: `<feature>/<line>-<scenario>/<label>.jsonl`,
/// one file per connection. Returns the files written.
pub(crate) fn write_scenario(
    dir: &Path,
    feature: &str,
    scenario: &str,
    line: usize,
    transcripts: &[Transcript],
) -> Result<Vec<PathBuf>, CaptureError> {
    let folder = dir
        .join(slug(feature))
        .join(format!("{line:04}-{}", slug(scenario)));
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let mut written = Vec::new();
    for transcript in transcripts {
        let path = folder.join(format!("{}.jsonl", slug(&transcript.connection)));
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut out = std::io::BufWriter::new(file);
        let header = Header {
            capture: FORMAT.to_owned(),
            connection: transcript.connection.clone(),
            user: transcript.user.clone(),
            feature: Some(feature.to_owned()),
            scenario: Some(scenario.to_owned()),
        };
        let mut put = |value: Result<String, serde_json::Error>| -> Result<(), CaptureError> {
            let text = value.map_err(|e| io(&path)(std::io::Error::other(e)))?;
            writeln!(out, "{text}").map_err(io(&path))
        };
        put(serde_json::to_string(&header))?;
        for frame in &transcript.frames {
            put(serde_json::to_string(&line_of(frame)))?;
        }
        out.flush().map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn line_of(frame: &Frame) -> Line {
    Line {
        direction: frame.direction,
        t_ms: (frame.t_ms * 1000.0).round() / 1000.0,
        kind: Some(Kind::of(&frame.frame)),
        frame: Value::String(frame.frame.clone()),
    }
}

/// Read the capture files at `paths`: files, or directories searched for `*.jsonl`, in name
/// order.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Capture>, CaptureError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_dir() {
            let before = files.len();
            collect(path, &mut files)?;
            if files.len() == before {
                return Err(CaptureError::Empty(path.clone()));
            }
        } else {
            files.push(path.clone());
        }
    }
    files.iter().map(|f| read(f)).collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CaptureError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry.extension().is_some_and(|e| e == "jsonl") {
            files.push(entry);
        }
    }
    Ok(())
}

/// Read one capture file.
pub fn read(path: &Path) -> Result<Capture, CaptureError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut header = None;
    let mut lines = Vec::new();
    for (n, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.map_err(io(path))?;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| CaptureError::Line {
            path: path.to_owned(),
            line: n + 1,
            reason,
        };
        let value: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if value.get("capture").is_some() {
            if header.is_some() || !lines.is_empty() {
                return Err(bad("a header line after the first line".into()));
            }
            let h: Header =
                serde_json::from_value(value).map_err(|e| bad(format!("a bad header: {e}")))?;
            if h.capture != FORMAT {
                return Err(bad(format!(
                    "capture format {:?}; this goldenpath reads {FORMAT:?}",
                    h.capture
                )));
            }
            header = Some(h);
            continue;
        }
        let line: Line = serde_json::from_value(value).map_err(|e| {
            bad(format!(
                "not a frame line ({e}): expected {{\"direction\": \"sent\"|\"received\", \"t_ms\": …, \"frame\": …}}"
            ))
        })?;
        lines.push(line);
    }
    let header = header.unwrap_or_else(|| Header {
        capture: FORMAT.to_owned(),
        connection: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Header::default()
    });
    Ok(Capture {
        path: path.to_owned(),
        header,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_back_from_the_descriptions() {
        assert_eq!(Kind::of("<binary 3 bytes>"), Kind::Binary);
        assert_eq!(Kind::of("<close 1000>"), Kind::Close);
        assert_eq!(Kind::of("<close without code>"), Kind::Close);
        assert_eq!(Kind::of("<pong \"x\">"), Kind::Pong);
        assert_eq!(Kind::of("<connection ended>"), Kind::Event);
        assert_eq!(Kind::of("{\"type\":\"pong\"}"), Kind::Text);
        assert_eq!(Kind::of("<not a description"), Kind::Text);
    }

    #[test]
    fn a_written_scenario_reads_back_frame_for_frame() {
        let dir = std::env::temp_dir().join(format!("gp-capture-{}", uuid::Uuid::new_v4()));
        let transcript = Transcript {
            connection: "alice#1".into(),
            user: "gp-alice".into(),
            frames: vec![
                Frame {
                    direction: Direction::Sent,
                    t_ms: 1.0,
                    frame: "{\"type\":\"ping\"}".into(),
                },
                Frame {
                    direction: Direction::Received,
                    t_ms: 2.5,
                    frame: "<binary 3 bytes>".into(),
                },
            ],
            omitted: 0,
            omitted_after: 0,
        };
        let files = write_scenario(&dir, "heartbeat", "A ping: is answered", 7, &[transcript])
            .expect("written");
        assert!(files[0].ends_with("heartbeat/0007-a-ping-is-answered/alice-1.jsonl"));
        let captures = read_all(std::slice::from_ref(&dir)).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(captures.len(), 1);
        assert_eq!(captures[0].header.connection, "alice#1");
        assert_eq!(captures[0].lines.len(), 2);
        assert_eq!(captures[0].lines[1].kind, Some(Kind::Binary));
        assert_eq!(captures[0].lines[0].text(), "{\"type\":\"ping\"}");
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let path = std::env::temp_dir().join(format!("gp-capture-{}.jsonl", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            "{\"direction\":\"received\",\"frame\":\"{}\"}\n{\"nope\":1}\n",
        )
        .expect("written");
        let err = read(&path).expect_err("line 2 is not a frame line");
        let _ = std::fs::remove_file(&path);
        assert!(err.to_string().contains(":2: not a frame line"), "{err}");
    }
}
