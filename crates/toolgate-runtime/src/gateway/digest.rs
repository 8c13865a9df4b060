//! Digests and secrets: canonical JSON, keyed argument digests (HMAC-SHA-256
//! with a key that is never journaled, so a redacted value cannot be recovered
//! from the journal by brute force), bindings, and random tokens.

use super::{Call, GatewayError};
use crate::journal::sha256_hex;
use crate::store::Binding;
use hmac::{Hmac, Mac as _};
use serde_json::Value as Json;
use sha2::Sha256;
use std::path::Path;

/// Canonical JSON: object keys sorted, no whitespace (the digests' input).
pub fn canonical(v: &Json) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String((*k).clone()).to_string());
                out.push(':');
                if let Some(inner) = map.get(*k) {
                    write_canonical(inner, out);
                }
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The key of the argument and context digests. Keep it outside the journal
/// and stable across restarts (bindings rebuilt from the journal must match).
#[derive(Clone)]
pub struct DigestKey {
    bytes: [u8; 32],
    /// HMAC-SHA-256 keyed with `bytes`, its key pads already absorbed (a
    /// digest clones it: two compressions fewer than keying anew).
    mac: Hmac<Sha256>,
    /// `mac` with the session label absorbed too ([`Self::session_text_digest`]).
    session: Hmac<Sha256>,
}

/// What every session digest starts with (domain separation from the other digests).
const SESSION_LABEL: &[u8] = b"toolgate-session-v1\n";

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // A key shorter than SHA-256's 64-byte block is zero-padded to it
        // (RFC 2104), so the padded block keys the same HMAC; `new` takes
        // a block and cannot fail, where `new_from_slice` returns a `Result`.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&bytes);
        let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(
            &hmac::digest::generic_array::GenericArray::from(block),
        );
        let mut session = mac.clone();
        session.update(SESSION_LABEL);
        DigestKey {
            bytes,
            mac,
            session,
        }
    }

    /// A new random key (from the operating system's CSPRNG).
    pub fn random() -> Result<Self, GatewayError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(GatewayError::Random)?;
        Ok(DigestKey::from_bytes(bytes))
    }

    /// The key in the file at `path` (64 hex digits), created with mode 0600
    /// and a random key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, GatewayError> {
        let io = |source: std::io::Error| GatewayError::Key {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(text.trim()).ok_or_else(|| GatewayError::KeyNotHex {
                path: path.to_path_buf(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random()?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut file = opts.open(path).map_err(io)?;
                std::io::Write::write_all(&mut file, format!("{}\n", hex(&key.bytes)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(DigestKey::from_bytes(bytes))
    }

    /// A fingerprint of the key that tells keys apart without revealing
    /// them (an HMAC of a fixed label), for replicas to compare.
    pub fn fingerprint(&self) -> String {
        self.digest(b"toolgate digest key fingerprint")
    }

    /// HMAC-SHA-256 of `bytes` under this key, in hex.
    pub fn digest(&self, bytes: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        hex(&mac.finalize().into_bytes())
    }

    /// The keyed digest a session indexes a provenance key's text under:
    /// HMAC-SHA-256 of `toolgate-session-v1\n` and `text`, its first 128
    /// bits in hex (the label is absorbed once, at construction).
    pub fn session_text_digest(&self, text: &str) -> String {
        let mut mac = self.session.clone();
        mac.update(text.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    /// A token sealed for the other replicas (which share this key): each hex
    /// digit XORed with one of HMAC-SHA-256(key, label, the token's SHA-256),
    /// a pad used for this token only. `None` for a token that is not 64 hex digits.
    pub fn seal_token(&self, token: &str, token_digest: &str) -> Option<String> {
        let pad = self.digest(format!("toolgate-token-seal-v1\n{token_digest}").as_bytes());
        if token.len() != pad.len() {
            return None;
        }
        token
            .chars()
            .zip(pad.chars())
            .map(|(t, p)| char::from_digit(t.to_digit(16)? ^ p.to_digit(16)?, 16))
            .collect()
    }

    /// The token a sealed token holds, if it is the one with this SHA-256.
    pub fn open_token(&self, sealed: &str, token_digest: &str) -> Option<String> {
        let token = self.seal_token(sealed, token_digest)?;
        (sha256_hex(token.as_bytes()) == token_digest).then_some(token)
    }

    /// The binding of an approval or token to a call: keyed digests of the
    /// arguments and of the context's other fields.
    pub fn binding(&self, call: &Call) -> Binding {
        Binding {
            agent: call.agent.clone(),
            tool: call.tool.clone(),
            args_digest: self.digest(canonical(&call.args).as_bytes()),
            tenant: call.context.tenant.clone(),
            env: call.context.env.clone(),
            context_digest: self
                .digest(canonical(&Json::Object(call.context.fields.clone())).as_bytes()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A new single-use token: 256 bits from the operating system's CSPRNG, in hex.
pub fn random_token() -> Result<String, GatewayError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(GatewayError::Random)?;
    Ok(hex(&bytes))
}

/// Counts the bytes of a value's JSON without building it.
pub(super) fn json_len(v: &Json) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, v) {
        Ok(()) => count.0,
        Err(_) => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Journals hold these digests: the keyed state absorbed once must give
    /// exactly what keying anew gives (HMAC-SHA-256, lower-case hex), and a
    /// session digest the first 128 bits of the labelled digest.
    #[test]
    fn digests_are_hmac_sha256_whatever_state_is_reused() {
        let key = DigestKey::from_bytes([7; 32]);
        for text in ["", "a", "t:someone@example.com", &"x".repeat(200)] {
            let mut fresh = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
            fresh.update(text.as_bytes());
            let expected: String = fresh
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(key.digest(text.as_bytes()), expected);
            let labelled = key.digest(format!("toolgate-session-v1\n{text}").as_bytes());
            assert_eq!(key.session_text_digest(text), labelled[..32]);
        }
        // A known answer (RFC 4231 test case 2: key "Jefe").
        let mut jefe = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        jefe.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&jefe.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_sealed_token_opens_only_with_the_key_and_for_its_digest() {
        let key = DigestKey::from_bytes([7; 32]);
        let token = random_token().unwrap();
        let digest = sha256_hex(token.as_bytes());
        let sealed = key.seal_token(&token, &digest).unwrap();
        assert_ne!(sealed, token);
        assert_eq!(key.open_token(&sealed, &digest), Some(token.clone()));
        let other = DigestKey::from_bytes([8; 32]);
        assert_eq!(other.open_token(&sealed, &digest), None);
        let wrong = sha256_hex(b"another token");
        assert_eq!(key.open_token(&sealed, &wrong), None);
    }
}
