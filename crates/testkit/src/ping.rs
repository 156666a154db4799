//! A loopback endpoint that records dead-man's-switch pings (healthchecks.io's
//! protocol), or hangs without answering, for the binaries' ping tests.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One ping received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `GET`, `POST`, `HEAD`.
    pub method: String,
    /// The path, e.g. `/check/start`.
    pub path: String,
    /// The body, as text.
    pub body: String,
}

/// A recording ping endpoint on 127.0.0.1.
#[derive(Debug)]
pub struct PingServer {
    port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl PingServer {
    /// Answers every ping with 200 and records it.
    pub fn start() -> PingServer {
        Self::serve(true)
    }

    /// Accepts connections and reads requests but never answers (a hung check).
    pub fn hanging() -> PingServer {
        Self::serve(false)
    }

    fn serve(answer: bool) -> PingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("ping server binds");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let seen = s2.clone();
                std::thread::spawn(move || handle(conn, &seen, answer));
            }
        });
        PingServer { port, seen }
    }

    /// The check's URL (a path under the server, as healthchecks.io's are).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ping/check-uuid", self.port)
    }

    /// The pings so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().expect("ping log").clone()
    }
}

/// A URL where nothing listens: a refused ping.
pub fn refusing_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port();
    format!("http://127.0.0.1:{port}/ping/refused")
}

fn handle(conn: TcpStream, seen: &Mutex<Vec<Received>>, answer: bool) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut conn = conn;
    while let Ok(Some(head)) = crate::http::read_head(&mut reader) {
        let mut body = Vec::new();
        if crate::http::read_body(&mut reader, &head, Some(&mut body)).is_err() {
            return;
        }
        seen.lock().expect("ping log").push(Received {
            method: head.method.clone(),
            path: head.target.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if !answer {
            // Hold the connection open, unanswered, until the client gives up.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
        if conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            .is_err()
        {
            return;
        }
    }
}
