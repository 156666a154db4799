//! Validated object keys and the reversible encoding of file paths into them.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::KeyError;

/// The longest object name Cloud Storage accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// An object key: `/`-separated, non-empty segments, none of them `.` or `..`, no
/// control characters, at most 1024 bytes. [`Key::parse`] is the only way to
/// build one, so every backend can trust its keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `s` as a key.
    ///
    /// # Errors
    /// [`KeyError`] naming the rule `s` breaks.
    pub fn parse(s: impl Into<String>) -> Result<Key, KeyError> {
        let s = s.into();
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(s));
        }
        if s.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(KeyError::BadSegment(s));
        }
        if s.chars().any(char::is_control) {
            return Err(KeyError::ControlCharacter(s));
        }
        Ok(Key(s))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/rest`, validated.
    ///
    /// # Errors
    /// [`KeyError`] if the result is not a valid key.
    pub fn join(&self, rest: &str) -> Result<Key, KeyError> {
        Key::parse(format!("{}/{}", self.0, rest))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Encodes a relative file path as `/`-separated text that is valid in a key and
/// decodes back to the same bytes: `%`, control characters and bytes that are not
/// valid UTF-8 become `%XX`; everything else is kept, so ordinary names read as
/// they are.
///
/// # Errors
/// [`KeyError::BadSegment`] for an absolute path or one with `.`/`..` components.
pub fn encode_path(rel: &Path) -> Result<String, KeyError> {
    let mut out = String::with_capacity(rel.as_os_str().len());
    for (i, comp) in rel.components().enumerate() {
        let Component::Normal(name) = comp else {
            return Err(KeyError::BadSegment(rel.to_string_lossy().into_owned()));
        };
        if i > 0 {
            out.push('/');
        }
        for chunk in name.as_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '%' || c.is_control() {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        push_escape(&mut out, b);
                    }
                } else {
                    out.push(c);
                }
            }
            for &b in chunk.invalid() {
                push_escape(&mut out, b);
            }
        }
    }
    if out.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(out)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Reverses [`encode_path`].
///
/// # Errors
/// [`KeyError::BadEscape`] for a `%` not followed by two hex digits.
pub fn decode_path(encoded: &str) -> Result<PathBuf, KeyError> {
    let out = percent_decode(encoded).ok_or_else(|| KeyError::BadEscape(encoded.to_owned()))?;
    Ok(PathBuf::from(OsString::from_vec(out)))
}

/// Strict percent-decoding: every `%` must be followed by exactly two hex digits
/// (`%+5`, which `u8::from_str_radix` would take for 5, is refused, as is a
/// truncated `%2`). `None` on a bad escape. The `percent-encoding` crate decodes
/// leniently (a bad escape passes through as text), which is wrong for names and
/// credentials read back from a target or a URL.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}
