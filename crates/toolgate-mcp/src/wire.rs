//! The proxy's wire form of a JSON-RPC message, and the only way bytes
//! leave the proxy: a [`Line`] is made from a parsed [`Json`] value by the
//! proxy's own serializer, never from received text.
//!
//! Security argument (finding C1 of the 2026-12 review): the proxy decides
//! a message from its parse, so what it forwards must be that parse and
//! nothing else. JSON allows raw `\n`, `\r`, tab and space between tokens,
//! and transports split on different characters (MCP stdio on `\n`, the
//! Python SDK's reader on universal newlines, some readers on U+2028): text
//! forwarded as received could reach the upstream as several messages, one
//! of them a `tools/call` nobody decided. A [`Line`] is compact JSON in
//! printable ASCII (`0x20..=0x7e`; every other character, in a string or
//! a key, is written as a `\uXXXX` escape), so no transport can split it
//! and it parses back to exactly the value it was made from.
//!
//! Reading is bounded too: [`read_line`] (and [`read_line_blocking`], for
//! the HTTP upstream's threads) reads one `\n`-terminated line of at most a
//! given length, and says when a line was longer (its bytes are skipped up
//! to the next `\n`, never buffered).

use serde_json::Value as Json;
use std::fmt::Write as _;
use std::io::BufRead;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest message the proxy reads from its client (a stdio line, a POST
/// body), in bytes: 1 MiB, as `policyc eval` reads a request. A client
/// sends requests, whose arguments the gateway caps far lower (64 KiB by
/// default); nothing it legitimately sends comes near it.
pub const MAX_CLIENT_LINE: usize = 1024 * 1024;

/// Longest message the proxy reads from an upstream (a stdio line, a JSON
/// body, an SSE event), in bytes: 16 MiB. Tool results can legitimately be
/// large (a file's text, an image as base64: a 12 MiB file fits), so the cap
/// is higher than the client's; it is not higher still because every queue
/// between the upstream and the client holds whole messages (see
/// `relay::QUEUE`), so this cap times the queues' length bounds what a
/// session can hold. A longer message is dropped and logged: larger
/// payloads belong in resources, read in pieces.
pub const MAX_UPSTREAM_LINE: usize = 16 * 1024 * 1024;

/// One message as the proxy writes it: compact JSON, printable ASCII only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line(String);

impl Line {
    /// The wire form of `message`.
    pub fn of(message: &Json) -> Line {
        let compact = message.to_string();
        if compact.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Line(compact);
        }
        let mut ascii = String::with_capacity(compact.len() + 16);
        for c in compact.chars() {
            if (' '..='~').contains(&c) {
                ascii.push(c);
                continue;
            }
            // Outside printable ASCII, a character can only be inside a
            // string or a key (serde_json writes no whitespace and escapes
            // control characters): the escape means the same character.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(ascii, "\\u{unit:04x}");
            }
        }
        Line(ascii)
    }

    /// The text, without a line terminator.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, without a line terminator.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// What one read of a line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A line (without its `\n`; a trailing `\r` is kept, JSON ignores it).
    Line(Vec<u8>),
    /// A line longer than the limit: its bytes were skipped.
    TooLong,
    /// The end of input (a last line without `\n` is returned first).
    End,
}

/// A line being read, capped: the bytes kept so far, or that it is too long.
struct Capped {
    line: Vec<u8>,
    too_long: bool,
    max: usize,
}

impl Capped {
    fn new(max: usize) -> Capped {
        Capped {
            line: Vec::new(),
            too_long: false,
            max,
        }
    }

    /// Takes what it needs of `buffer`: the bytes used, and the read once the line ended.
    fn take(&mut self, buffer: &[u8]) -> (usize, Option<Read>) {
        let (chunk, ended) = match buffer.iter().position(|&b| b == b'\n') {
            Some(at) => (&buffer[..at], Some(at + 1)),
            None => (buffer, None),
        };
        if !self.too_long && self.line.len() + chunk.len() <= self.max {
            self.line.extend_from_slice(chunk);
        } else {
            self.too_long = true;
            self.line = Vec::new();
        }
        let Some(used) = ended else {
            return (buffer.len(), None);
        };
        let read = match self.too_long {
            true => Read::TooLong,
            false => Read::Line(std::mem::take(&mut self.line)),
        };
        (used, Some(read))
    }

    /// The read at the end of input: a last line without its `\n`, or the end.
    fn at_end(&mut self) -> Read {
        match (self.too_long, self.line.is_empty()) {
            (true, _) => Read::TooLong,
            (false, true) => Read::End,
            (false, false) => Read::Line(std::mem::take(&mut self.line)),
        }
    }
}

/// Reads one `\n`-terminated line of at most `max` bytes from `input`.
pub async fn read_line<R: AsyncBufRead + Unpin>(input: &mut R, max: usize) -> Read {
    let mut capped = Capped::new(max);
    loop {
        let Ok(buffer) = input.fill_buf().await else {
            return Read::End;
        };
        if buffer.is_empty() {
            return capped.at_end();
        }
        let (used, read) = capped.take(buffer);
        input.consume(used);
        if let Some(read) = read {
            return read;
        }
    }
}

/// [`read_line`] on a blocking reader (the HTTP upstream's threads).
pub fn read_line_blocking<R: BufRead>(input: &mut R, max: usize) -> Read {
    let mut capped = Capped::new(max);
    loop {
        let Ok(buffer) = input.fill_buf() else {
            return Read::End;
        };
        if buffer.is_empty() {
            return capped.at_end();
        }
        let (used, read) = capped.take(buffer);
        input.consume(used);
        if let Some(read) = read {
            return read;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_line, read_line_blocking, Line, Read};
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    fn json_value() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_line_is_printable_ascii_and_parses_back_to_its_value(value in json_value()) {
            let line = Line::of(&value);
            prop_assert!(line.as_str().bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", line.as_str());
            let back: Json = serde_json::from_str(line.as_str()).unwrap();
            prop_assert_eq!(back, value);
        }
    }

    #[test]
    fn line_separators_and_control_characters_are_escaped() {
        let value = json!({"a\u{2028}": "x\ny\rz\u{85}\u{2029}\u{7f}é😀"});
        let line = Line::of(&value);
        assert_eq!(
            line.as_str(),
            r#"{"a\u2028":"x\ny\rz\u0085\u2029\u007f\u00e9\ud83d\ude00"}"#
        );
    }

    fn read_all(input: &[u8], max: usize) -> Vec<Read> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reads = runtime.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(4, input);
            let mut out = Vec::new();
            loop {
                let read = read_line(&mut reader, max).await;
                let end = read == Read::End;
                out.push(read);
                if end {
                    return out;
                }
            }
        });
        let mut reader = std::io::BufReader::with_capacity(4, input);
        let mut blocking = Vec::new();
        loop {
            let read = read_line_blocking(&mut reader, max);
            let end = read == Read::End;
            blocking.push(read);
            if end {
                break;
            }
        }
        assert_eq!(reads, blocking, "both readers read the same lines");
        reads
    }

    #[test]
    fn lines_over_the_limit_are_skipped_whole() {
        let got = read_all(b"ab\nabcdefgh\r\n\nabcd\nlast", 4);
        assert_eq!(
            got,
            [
                Read::Line(b"ab".to_vec()),
                Read::TooLong,
                Read::Line(Vec::new()),
                Read::Line(b"abcd".to_vec()),
                Read::Line(b"last".to_vec()),
                Read::End,
            ]
        );
        assert_eq!(read_all(b"abcdefgh", 4), [Read::TooLong, Read::End]);
    }
}
