//! The `multipart/form-data` body of `POST /assets`, written by hand: text fields
//! first, then the file parts, with a known `Content-Length`. A file payload is
//! streamed from its open descriptor (`imb_http::body`), so a 4 GB video never
//! sits in memory and a retry re-reads from the start.
//!
//! Order matters to Immich: it decides whether a file part is acceptable while the
//! part streams in, using the `filename` field if that arrived earlier.

use bytes::BytesMut;
use imb_http::body::{Part, Source};
use imb_storage::Payload;

/// A form being built.
pub(crate) struct Form {
    boundary: String,
    segments: Vec<Part>,
    head: BytesMut,
}

/// WHATWG's escaping of names in `Content-Disposition` (what browsers and undici do).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Form {
    pub(crate) fn new(boundary: String) -> Form {
        Form {
            boundary,
            segments: Vec::new(),
            head: BytesMut::new(),
        }
    }

    fn push_text(&mut self, s: &str) {
        self.head.extend_from_slice(s.as_bytes());
    }

    fn flush_head(&mut self) {
        if !self.head.is_empty() {
            let b = self.head.split().freeze();
            self.segments.push(Part::Bytes(b));
        }
    }

    /// A text field.
    pub(crate) fn text(&mut self, name: &str, value: &str) {
        let b = &self.boundary;
        let s = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
            quote(name)
        );
        self.push_text(&s);
    }

    /// A file part.
    pub(crate) fn file(&mut self, name: &str, filename: &str, payload: Payload) {
        let b = &self.boundary;
        let s = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            quote(name),
            quote(filename)
        );
        self.push_text(&s);
        self.flush_head();
        self.segments.push(Part::payload(payload));
        self.push_text("\r\n");
    }

    /// Closes the form; returns its body with its content type and length.
    pub(crate) fn finish(mut self) -> (Source, String, u64) {
        let end = format!("--{}--\r\n", self.boundary);
        self.push_text(&end);
        self.flush_head();
        let ct = format!("multipart/form-data; boundary={}", self.boundary);
        let body = Source::new(self.segments, None);
        let len = body.len();
        (body, ct, len)
    }
}
