//! The `/metrics` endpoint for Prometheus, on hyper (HTTP/1): `GET /metrics` and nothing else.
//!
//! Anything but `GET /metrics` gets 404; a request hyper cannot parse gets 400, a head over
//! [`MAX_HEAD`] 431. A client must send its whole head within [`HEADER_TIMEOUT`] and the whole
//! exchange must end within [`CONNECTION_TIMEOUT`]; one answer per connection. At most
//! [`MAX_CONNECTIONS`] connections are served at once (more are closed unanswered), far more than
//! a few idle or slow clients can hold, so they cannot starve a scrape. Meant for loopback or a
//! trusted network: there is no TLS and no authentication.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as EXPOSITION;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::Metrics;

/// Largest request head accepted (hyper's smallest buffer).
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a whole connection may take.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

/// Why the endpoint could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    // `error` is not a `source`: its text is already in the message.
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {}", describe(.error))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
    /// Accepting connections failed for good.
    #[error("metrics endpoint {addr}: accept failed: {error}")]
    Accept {
        /// The bound address.
        addr: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
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
    /// Binds `addr`.
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
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
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
                serve_connection(stream, metrics).await;
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

/// One connection, one answer, within the time limits.
async fn serve_connection(stream: TcpStream, metrics: Arc<Metrics>) {
    let service = hyper::service::service_fn(move |req| {
        let metrics = Arc::clone(&metrics);
        async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        // A client may shut its side once the request is sent (`nc -N`): still answer it.
        .half_close(true)
        .keep_alive(false);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics endpoint: connection failed"),
        Err(_) => tracing::debug!("metrics endpoint: connection timed out"),
    }
}

/// `GET /metrics` (any query) gets the exposition; anything else 404.
fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if req.method() == Method::GET && req.uri().path() == "/metrics" {
            (StatusCode::OK, EXPOSITION, metrics.render())
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_owned(),
            )
        };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let lower = ok.to_ascii_lowercase();
        assert!(
            lower.contains("\r\ncontent-type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("\nautoblock_bans_total{rule=\"syn-flood\"} 1\n"),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.contains(&format!("content-length: {}", body.len())));

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

    /// `nc -N` sends the request, then shuts its side while the server works on the answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_shuts_its_side_after_the_request_still_gets_the_answer() {
        let (addr, _tx, _task) = start().await;
        for _ in 0..200 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            tokio::task::yield_now().await;
            s.shutdown().await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out:?}");
        }
    }

    #[tokio::test]
    async fn idle_connections_do_not_starve_a_scrape() {
        let (addr, _tx, _task) = start().await;
        // More idle clients than the old hand-written server had slots (16): each connects and
        // says nothing.
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let scrape = fetch(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let ok = tokio::time::timeout(Duration::from_secs(2), scrape)
            .await
            .expect("a scrape is answered at once beside idle connections");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        drop(idle);
    }

    #[tokio::test]
    async fn a_head_sent_too_slowly_is_cut_off() {
        let (addr, _tx, _task) = start().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(HEADER_TIMEOUT * 2, s.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "the server closes a connection that never ends its head"
        );
        assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
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
