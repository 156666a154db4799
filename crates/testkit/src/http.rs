//! One HTTP/1.1 request reader for the test servers (the test Immich server and
//! the GCS fault proxy): the request line and headers, then a `Content-Length` or
//! chunked body.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;

pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Names lowercased.
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
    pub(crate) fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

pub(crate) fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut line = String::new();
    // Tolerate blank lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok(Some(Head {
        method,
        target,
        headers,
    }))
}

/// Reads the body into `keep` (or just counts it when `keep` is `None`). Returns
/// the bytes read.
pub(crate) fn read_body(
    r: &mut BufReader<TcpStream>,
    head: &Head,
    mut keep: Option<&mut Vec<u8>>,
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut take = |r: &mut BufReader<TcpStream>, n: u64, total: &mut u64| -> io::Result<()> {
        let mut left = n;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let got = r.read(&mut buf[..want])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if let Some(k) = keep.as_deref_mut() {
                k.extend_from_slice(&buf[..got]);
            }
            left -= got as u64;
            *total += got as u64;
        }
        Ok(())
    };
    if head.chunked() {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let hex = size.trim().split(';').next().unwrap_or("").trim();
            let n = u64::from_str_radix(hex, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if n == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                return Ok(total);
            }
            take(r, n, &mut total)?;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
        }
    }
    let len = head.content_length().unwrap_or(0);
    take(r, len, &mut total)?;
    Ok(total)
}

impl Head {
    /// The request line and headers to send upstream with a body of `len` bytes
    /// (as read: de-chunked), on a connection that closes after the answer.
    pub(crate) fn to_wire_closing(&self, len: usize) -> String {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        let hop = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
        ];
        for (k, v) in &self.headers {
            if !hop.contains(&k.as_str()) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!(
            "Content-Length: {len}\r\nConnection: close\r\n\r\n"
        ));
        out
    }
}
