//! The target flags `check` and `load` share: where the server is, how to authenticate, how to
//! speak to it. One clap struct ([`TargetArgs`]) flattened into both, so the two commands can
//! never drift apart.

use clap::Args;
use goldenpath::{Dialect, Target, TokenSource, tokens};
use std::path::{Path, PathBuf};

/// Where the server is and how to reach it.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// The server's WebSocket URL (ws:// or wss://). Without it, the embedded reference router
    /// is started on 127.0.0.1 and used. Repeat it for the instances of one deployment
    /// (`--url A --url B --url C`): users and each user's connections are spread over them
    /// round-robin.
    #[arg(long)]
    url: Vec<String>,
    /// A file of instance URLs, one a line (blank lines and `#` comments ignored), added after
    /// those of --url.
    #[arg(long, value_name = "FILE")]
    urls_file: Option<PathBuf>,
    /// Mint HS256 tokens with this secret (the server's).
    #[arg(
        long,
        env = "GOLDENPATH_JWT_SECRET",
        hide_env_values = true,
        group = "tokens"
    )]
    jwt_secret: Option<String>,
    /// An extra claim for minted tokens, key=value (e.g. iss=auth, aud=chat). Repeatable.
    #[arg(long = "jwt-claim", value_name = "KEY=VALUE")]
    jwt_claims: Vec<String>,
    /// A JSON file mapping user → token (the users a run connects must be in it: use
    /// --jwt-secret or --token-url unless the file was written for this run).
    #[arg(long, group = "tokens")]
    token_file: Option<PathBuf>,
    /// A login endpoint: POST {"user": "<name>"} returns {"token": "..."}.
    #[arg(long, group = "tokens")]
    token_url: Option<String>,
    /// An extra header on every upgrade request, K:V. Repeatable.
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// An extra subprotocol to offer.
    #[arg(long)]
    subprotocol: Option<String>,
    /// A PEM file of a private CA to trust for wss://.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Speak to the server through this dialect: a built-in name (canonical, netra-legacy) or
    /// a dialect TOML file (see suite/dialects/README.md; needs --url). Results reached through
    /// it are marked, and the mapping rules it needed are reported as migration debt.
    #[arg(long, value_name = "NAME|FILE", default_value = "canonical")]
    dialect: String,
}

impl TargetArgs {
    /// The instance URLs, --url first then --urls-file, each checked to be a ws:// or wss://
    /// URL; empty when neither flag was given.
    pub(crate) fn urls(&self) -> Result<Vec<String>, String> {
        let mut urls = Vec::new();
        for url in &self.url {
            check_url(url).map_err(|e| format!("--url {e}"))?;
            urls.push(url.clone());
        }
        if let Some(path) = &self.urls_file {
            urls.extend(read_urls_file(path)?);
        }
        Ok(urls)
    }

    /// The dialect --dialect names: a built-in or a file; a non-canonical one needs a URL.
    pub(crate) fn dialect(&self) -> Result<Dialect, String> {
        let dialect = Dialect::load(&self.dialect).map_err(|e| format!("--dialect: {e}"))?;
        if !dialect.is_canonical() && self.url.is_empty() && self.urls_file.is_none() {
            return Err(format!(
                "--dialect {} needs --url: the embedded reference router speaks the canonical dialect",
                dialect.name()
            ));
        }
        Ok(dialect)
    }

    /// The target and its token source; `None` for the embedded reference (no URL given).
    pub(crate) fn target(&self) -> Result<Option<(Target, TokenSource)>, String> {
        let urls = self.urls()?;
        let Some((url, more)) = urls.split_first() else {
            if self.jwt_secret.is_some() || self.token_file.is_some() || self.token_url.is_some() {
                return Err(
                    "a token source needs --url: without it the embedded reference is used".into(),
                );
            }
            return Ok(None);
        };
        let mut headers = Vec::new();
        for h in &self.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| format!("--header {h:?} is not K:V"))?;
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let target = Target::new(
            url,
            headers,
            self.subprotocol.clone(),
            self.ca_cert.as_deref(),
        )
        .and_then(|t| t.with_instances(more))
        .map_err(|e| e.to_string())?;
        let tokens = if let Some(secret) = &self.jwt_secret {
            TokenSource::Secret {
                secret: secret.clone(),
                claims: tokens::parse_claims(&self.jwt_claims).map_err(|e| e.to_string())?,
            }
        } else if let Some(file) = &self.token_file {
            TokenSource::from_file(file).map_err(|e| e.to_string())?
        } else if let Some(login) = &self.token_url {
            check_http_url(login).map_err(|e| format!("--token-url {e}"))?;
            TokenSource::from_url(login.clone())
        } else {
            return Err(
                "--url needs a token source: --jwt-secret, --token-file or --token-url".into(),
            );
        };
        Ok(Some((target, tokens)))
    }
}

/// `url` parsed: a ws:// or wss:// URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(format!(
            "{url:?} is not a ws:// or wss:// URL (its scheme is {}://)",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

/// `url` parsed: an http:// or https:// URL.
fn check_http_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    Ok(())
}

/// The URLs of a --urls-file: one a line, blank lines and `#` comments ignored; a bad URL is
/// named with its line.
fn read_urls_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--urls-file {}: {e}", path.display()))?;
    let urls = parse_urls(&text).map_err(|e| format!("--urls-file {}:{e}", path.display()))?;
    if urls.is_empty() {
        return Err(format!(
            "--urls-file {}: no URL in it (one ws:// or wss:// URL a line)",
            path.display()
        ));
    }
    Ok(urls)
}

/// The URLs of a --urls-file's text; the error starts with the line number.
fn parse_urls(text: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if line.is_empty() {
            continue;
        }
        check_url(line).map_err(|e| format!("{}: {e}", n + 1))?;
        urls.push(line.to_owned());
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_file_skips_comments_and_blank_lines_and_names_the_line_of_a_bad_url() {
        let text = "# the cluster\n\nws://127.0.0.1:9001/ws  # first\n  wss://b.example/ws\n";
        assert_eq!(
            parse_urls(text).unwrap(),
            ["ws://127.0.0.1:9001/ws", "wss://b.example/ws"]
        );
        let err = parse_urls("ws://a/ws\nhttp://b/ws\n").unwrap_err();
        assert!(err.starts_with("2: "), "{err}");
        assert!(err.contains("not a ws:// or wss:// URL"), "{err}");
        let err = parse_urls("ws://a/ws\n\nws://[::1/ws\n").unwrap_err();
        assert!(err.starts_with("3: ") && err.contains("not a URL"), "{err}");
    }

    #[test]
    fn a_url_needs_a_websocket_scheme_and_a_host() {
        assert!(check_url("ws://127.0.0.1:8080/ws").is_ok());
        assert!(check_url("WSS://Example.com").is_ok());
        assert!(check_url("127.0.0.1:8080").is_err());
        assert!(check_url("https://example.com/ws").is_err());
        assert!(check_url("ws://").is_err());
    }
}
