//! Reading JSON Lines input (`eval --requests`, `replay --trace`) one line
//! at a time, with a cap on the length of a line.

use std::io::BufRead;

/// The longest input line read (1 MiB, not counting the newline); a longer
/// line is an error for that line and is skipped without being held.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Reads the next line of `input`, without its `\n`, into `buf`, with
/// [`MAX_LINE`] as the cap (see [`next_capped`]).
pub(crate) fn next(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    next_capped(input, MAX_LINE, buf)
}

/// Reads the next line of `input`, without its `\n`, into `buf`: `None` at
/// the end of input, `Some(true)` when it held at most `cap` bytes,
/// `Some(false)` when it was longer (then `buf` is empty: the rest of the
/// line is read and dropped piece by piece, never held whole).
pub(crate) fn next_capped(
    input: &mut dyn BufRead,
    cap: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut fits) = (false, true);
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let end = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..end.unwrap_or(chunk.len())];
        if fits && buf.len() + part.len() <= cap {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        let used = end.map_or(chunk.len(), |i| i + 1);
        input.consume(used);
        if end.is_some() {
            return Ok(Some(fits));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_capped;

    /// Every line of `text` read with a tiny buffer and `cap`: `Some(line)` or `None` if too long.
    fn lines(text: &str, cap: usize) -> Vec<Option<String>> {
        let mut input = std::io::BufReader::with_capacity(3, text.as_bytes());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(fits)) = next_capped(&mut input, cap, &mut buf) {
            out.push(fits.then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    #[test]
    fn lines_longer_than_the_cap_are_reported_and_skipped() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(lines("", 4), []);
        assert_eq!(lines("\n", 4), [some("")]);
        assert_eq!(lines("abcd\nabcde\nx", 4), [some("abcd"), None, some("x")]);
        assert_eq!(lines("abcdefghij\nab\n", 4), [None, some("ab")]);
        assert_eq!(lines("ab\nabcdefghij", 4), [some("ab"), None]);
    }
}
