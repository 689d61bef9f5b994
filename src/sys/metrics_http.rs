//! A minimal HTTP/1.x endpoint for Prometheus: `GET /metrics` and nothing else.
//!
//! No framework: read the request head (at most `MAX_HEAD` bytes, within `READ_TIMEOUT`),
//! answer once, close. Anything but `GET /metrics` gets 404; a head that is too large, slow
//! or not HTTP gets 400 or is dropped. At most `MAX_CONNECTIONS` requests are served at once;
//! more are closed unanswered, so a stuck client cannot pile up tasks. Meant for loopback or
//! a trusted network: there is no TLS and no authentication.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::sys::metrics::Metrics;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    // `error` is not a `source`: its text is already in the message.
    #[error("cannot listen on {addr}: {}", describe(.error))]
    Bind { addr: SocketAddr, error: io::Error },
    #[error("metrics endpoint {addr}: accept failed: {error}")]
    Accept { addr: SocketAddr, error: io::Error },
}

/// The common bind failures in plain words; anything else as the OS says it.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "no such local address".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// A bound metrics endpoint, not yet serving: bind first to learn the address (port 0) or to
/// fail early at start, then [`serve`](MetricsServer::serve).
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        let bind_err = |error| MetricsError::Bind { addr, error };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(MetricsServer { listener, addr })
    }

    /// The bound address (with the real port when bound to port 0).
    #[cfg(test)]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer scrapes until `shutdown` becomes true or its sender is dropped.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), MetricsError> {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            if *shutdown.borrow_and_update() {
                return Ok(());
            }
            let (stream, _peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    // Per-connection failures (reset before accept, fd limits): keep serving.
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(error) => return Err(MetricsError::Accept { addr: self.addr, error }),
                },
                changed = shutdown.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return Ok(()),
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                continue; // busy: drop the connection
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(e) = handle(stream, &metrics).await {
                    tracing::debug!(error = %e, "metrics endpoint: connection failed");
                }
            });
        }
    }
}

/// Bind `addr` and serve until shutdown (see [`MetricsServer`] to learn a port-0 address).
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr)
        .await?
        .serve(metrics, shutdown)
        .await
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE
        || e.raw_os_error() == Some(23) // ENFILE
}

/// What a request head asks for.
#[derive(Debug, PartialEq)]
enum Request {
    Metrics,
    NotFound,
    Bad,
}

/// Classify a request head: only the request line matters (`GET /metrics[?query] HTTP/1.x`).
fn route(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method == "GET" && path == "/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    }
}

/// Read up to the blank line ending the head; `None` when the client closes, stalls or sends
/// more than `MAX_HEAD` bytes without one.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > MAX_HEAD {
                return Ok(None);
            }
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(Some(()));
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(Some(()))) => Ok(Some(head)),
        Ok(Ok(None)) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let request = match read_head(&mut stream).await? {
        Some(head) => route(&head),
        None => Request::Bad,
    };
    let (status, content_type, body) = match request {
        Request::Metrics => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        Request::NotFound => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        Request::Bad => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(READ_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Request::Metrics);
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Request::Bad);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Request::Bad);
        assert_eq!(route(b""), Request::Bad);
    }

    fn metrics() -> Arc<Metrics> {
        let m = Metrics::new(["eth0"], ["syn-flood"]);
        m.ban("syn-flood");
        Arc::new(m)
    }

    /// Send `request` to `addr` and read the whole answer.
    async fn fetch(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    async fn start() -> (
        SocketAddr,
        watch::Sender<bool>,
        tokio::task::JoinHandle<Result<(), MetricsError>>,
    ) {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.local_addr();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server.serve(metrics(), rx));
        (addr, tx, task)
    }

    #[tokio::test]
    async fn serves_metrics_and_404_then_stops_on_shutdown() {
        let (addr, tx, task) = start().await;

        let ok = fetch(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("\nautoblock_bans_total{rule=\"syn-flood\"} 1\n"),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));

        let nf = fetch(addr, "GET /other HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");

        let bad = fetch(addr, "hello\n\n").await;
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");

        tx.send(true).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server stops on shutdown")
            .unwrap();
        assert!(res.is_ok());
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }

    #[tokio::test]
    async fn dropping_the_shutdown_sender_stops_it_too() {
        let (_addr, tx, task) = start().await;
        drop(tx);
        let res = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server stops")
            .unwrap();
        assert!(res.is_ok());
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused() {
        let (addr, _tx, _task) = start().await;
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may close before reading everything; a write error is fine.
        let _ = s.write_all(huge.as_bytes()).await;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        assert!(!out.contains("200 OK"), "{out}");
    }

    #[tokio::test]
    async fn bind_errors_say_where_and_why() {
        let first = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = first.local_addr();
        let Err(e) = MetricsServer::bind(addr).await else {
            panic!("second bind on {addr} succeeded");
        };
        assert_eq!(
            e.to_string(),
            format!("cannot listen on {addr}: address in use")
        );
    }
}
