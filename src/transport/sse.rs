//! Server-sent events: the parser the upstream HTTP client reads with, and the encoder the
//! downstream HTTP server writes with. Only `data:` payloads matter to MCP.

/// Incremental SSE parser: feed bytes, get complete `data` payloads.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<String>,
    /// Events larger than this are dropped whole, so a peer cannot grow our memory unbounded.
    limit: usize,
    oversized: bool,
}

impl SseParser {
    pub fn new(limit: usize) -> Self {
        SseParser { limit, ..Default::default() }
    }

    /// Feeds a chunk; returns the data of every event completed by it.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(chunk);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&line, &mut out);
        }
        if self.buf.len() > self.limit {
            self.buf.clear();
            self.oversized = true;
        }
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() && !self.oversized {
                out.push(self.data.join("\n"));
            }
            self.data.clear();
            self.oversized = false;
            return;
        }
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let size: usize = self.data.iter().map(String::len).sum::<usize>() + rest.len();
            if size > self.limit {
                self.oversized = true;
            } else {
                self.data.push(String::from_utf8_lossy(rest).into_owned());
            }
        }
        // `event:`, `id:`, `retry:` and comments carry nothing MCP needs here.
    }
}

/// One SSE event carrying a JSON-RPC message.
pub fn encode(data: &str) -> String {
    // JSON text from serde has no raw newlines, but a peer's frame might; split to stay valid SSE.
    let mut out = String::with_capacity(data.len() + 24);
    out.push_str("event: message\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::new(1024);
        assert!(p.feed(b"id: 1\nevent: message\ndata: {\"a\"").is_empty());
        assert_eq!(p.feed(b":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n"), vec!["{\"a\":1}", "x\ny"]);
    }

    #[test]
    fn oversized_events_are_dropped() {
        let mut p = SseParser::new(8);
        assert!(p.feed(b"data: 0123456789\n\n").is_empty());
        assert_eq!(p.feed(b"data: ok\n\n"), vec!["ok"]);
    }

    #[test]
    fn encode_round_trips() {
        let mut p = SseParser::new(1024);
        assert_eq!(p.feed(encode("{\"a\":\"b\"}").as_bytes()), vec!["{\"a\":\"b\"}"]);
    }
}
