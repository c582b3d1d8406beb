//! Lines from a child's stdout or stderr that survive what a broken or hostile child writes.
//!
//! `LinesCodec` reports an over-long line or invalid UTF-8 as an error, and a `FramedRead`
//! ends its stream after any error: one bad line would stop the gateway reading the pipe, so
//! the child's next write fails (it dies of EPIPE, or blocks on a full pipe) and every call in
//! flight is lost. Here both are items, so the reader drops the line and carries on.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

/// One line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Longer than the limit; skipped up to its newline.
    TooLong,
    /// Not UTF-8; skipped.
    NotUtf8,
}

/// Newline-delimited lines of at most `max` bytes; bad lines are [`Line`] items, not errors.
pub struct TolerantLines(LinesCodec);

impl TolerantLines {
    pub fn new(max: usize) -> TolerantLines {
        TolerantLines(LinesCodec::new_with_max_length(max))
    }

    fn map(result: Result<Option<String>, LinesCodecError>) -> Result<Option<Line>, LinesCodecError> {
        match result {
            Ok(line) => Ok(line.map(Line::Text)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
            // LinesCodec has already taken the line out of the buffer when it finds it is not UTF-8.
            Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Some(Line::NotUtf8)),
            Err(e) => Err(e),
        }
    }
}

impl Decoder for TolerantLines {
    type Item = Line;
    type Error = LinesCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LinesCodecError> {
        Self::map(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, LinesCodecError> {
        Self::map(self.0.decode_eof(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio_util::codec::FramedRead;

    #[tokio::test]
    async fn reading_goes_on_past_long_lines_and_invalid_utf8() {
        let mut input = Vec::new();
        input.extend_from_slice(b"first\n");
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\n\xff\xfe not utf-8\nlast\n");
        let lines: Vec<Line> = FramedRead::new(&input[..], TolerantLines::new(16)).map(|l| l.unwrap()).collect().await;
        assert_eq!(lines, [Line::Text("first".into()), Line::TooLong, Line::NotUtf8, Line::Text("last".into())]);
    }
}
