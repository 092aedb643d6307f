//! Stdio mode: runs an MCP server as a child process and meters the newline-delimited JSON-RPC on its stdin
//! and stdout, relaying every byte unchanged and as soon as it is read.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use mcpulse_wire::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;

use crate::MeterError;
use crate::observe::Observer;

/// Splits a byte stream into lines without ever holding more than `max_line` bytes of one line.
pub struct LineSplitter {
    line: Vec<u8>,
    max_line: usize,
    oversized: bool,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        Self {
            line: Vec::new(),
            max_line,
            oversized: false,
        }
    }

    /// Calls `on_line` for each complete line of `chunk` that fit in the limit (without its newline).
    pub fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            let (content, ends) = match piece.split_last() {
                Some((b'\n', content)) => (content, true),
                _ => (piece, false),
            };
            if !self.oversized {
                if self.line.len() + content.len() > self.max_line {
                    self.oversized = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(content);
                }
            }
            if ends {
                if !self.oversized {
                    let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                    if !line.is_empty() {
                        on_line(line);
                    }
                }
                self.line.clear();
                self.oversized = false;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

pub async fn run(
    command: &str,
    args: &[String],
    observer: Arc<Observer>,
    max_line: usize,
) -> Result<i32, MeterError> {
    let mut child = Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| MeterError::Spawn {
            command: command.to_owned(),
            source,
        })?;
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(MeterError::Io(std::io::Error::other(
            "child stdio was not captured",
        )));
    };
    // One child process is one MCP session, counted once its initialize is answered.
    let session: Arc<str> = Arc::from("stdio");
    observer.session_created(session.clone(), 0, None, Instant::now());
    let upward = relay(
        tokio::io::stdin(),
        child_in,
        Side::Client,
        observer.clone(),
        session.clone(),
        max_line,
    );
    let downward = relay(
        child_out,
        tokio::io::stdout(),
        Side::Server,
        observer.clone(),
        session.clone(),
        max_line,
    );
    let upward = tokio::spawn(upward);
    let downward = tokio::spawn(downward);
    let status = child.wait().await?;
    // The child is gone: deliver what it wrote, then stop reading our stdin for it.
    let _ = downward.await;
    upward.abort();
    observer.session_closed(&session, Instant::now());
    Ok(status.code().unwrap_or(1))
}

async fn relay(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    side: Side,
    observer: Arc<Observer>,
    session: Arc<str>,
    max_line: usize,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = LineSplitter::new(max_line);
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            // Closing the child's stdin is how a stdio client ends the session.
            return to.shutdown().await;
        }
        to.write_all(&buffer[..n]).await?;
        to.flush().await?;
        let now = Instant::now();
        lines.feed(&buffer[..n], |line| {
            observe_line(&observer, &session, side, line, now)
        });
    }
}

fn observe_line(observer: &Observer, session: &Arc<str>, side: Side, line: &[u8], now: Instant) {
    let messages: Vec<Message> = match mcpulse_wire::classify(line) {
        Ok(messages) => messages,
        Err(_) => {
            if matches!(side, Side::Client) {
                observer.unparseable(now, now);
            }
            return;
        }
    };
    match side {
        Side::Client => observer.client_messages(Some(session), &messages, line.len(), now),
        Side::Server => {
            observer.server_messages(Some(session), Some(session), &messages, line.len(), now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LineSplitter;

    fn lines(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, |line| {
                out.push(String::from_utf8_lossy(line).into_owned())
            });
        }
        out
    }

    /// (max line, chunks fed, lines expected, reason)
    type Case<'a> = (usize, &'a [&'a [u8]], &'a [&'a str], &'a str);

    #[test]
    fn splits_across_chunks_and_skips_oversized_lines() {
        let cases: [Case; 4] = [
            (
                100,
                &[b"a\nb", b"c\n"],
                &["a", "bc"],
                "a line continues in the next chunk",
            ),
            (
                100,
                &[b"a\r\n\n"],
                &["a"],
                "CRLF is trimmed, empty lines are skipped",
            ),
            (
                3,
                &[b"abcd", b"ef\nxy\n"],
                &["xy"],
                "an oversized line is dropped, the next is kept",
            ),
            (
                100,
                &[b"no newline yet"],
                &[],
                "a partial line is not reported",
            ),
        ];
        for (max, chunks, expected, reason) in cases {
            assert_eq!(lines(max, chunks), expected, "{reason}");
        }
    }
}
