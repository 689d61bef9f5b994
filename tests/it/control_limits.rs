//! Control-socket slots (issue 11, low finding): a client that sends requests and never reads
//! the answers held its slot forever (the server blocked writing); with every slot held, no
//! `status` got through. Without root: `serve` in-process on a temp path with a handler whose
//! `list` answer (~2 MB) is larger than a socket buffer.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoblock::sys::control::ControlHandler;
use autoblock::sys::control::protocol::{
    BanInfo, Request, Response, StatusInfo, encode_request, parse_net,
};
use autoblock::sys::control::server::{Limits, serve_with};
use tokio::sync::watch;

/// `list` answers with ~2 MB; `status` with a small line.
struct Big;

impl ControlHandler for Big {
    fn handle(&self, req: Request) -> Response {
        match req {
            Request::List => Response::List(
                (0..10_000u32)
                    .map(|i| BanInfo {
                        target: parse_net(&format!("10.{}.{}.1", i / 256, i % 256)).expect("net"),
                        reason: "x".repeat(64),
                        since: "2026-11-24T10:00:00.000Z".into(),
                        until: "2026-11-24T10:10:00.000Z".into(),
                        remaining_secs: 1,
                        offense: 1,
                        manual: false,
                        rule: "x".into(),
                        dry_run: false,
                        origin: None,
                    })
                    .collect(),
            ),
            _ => Response::Status(StatusInfo {
                version: "0".into(),
                pid: 1,
                uptime_secs: 0,
                config: String::new(),
                backend: "ipset".into(),
                chain: "AUTOBLOCK".into(),
                dry_run: true,
                interfaces: vec![],
                tracked_sources: 0,
                untracked_packets: 0,
                untracked_distinct_packets: 0,
                active_bans: 0,
                bans_total: 0,
                events_suppressed: 0,
                last_reload: None,
                enforcer_errors: 0,
                pending_decisions: 0,
                ..StatusInfo::default()
            }),
        }
    }
}

/// Sends `list` and never reads: the server's answer fills the socket buffer and stalls.
fn stalled_client(path: &Path) -> UnixStream {
    // The file appears at bind, a moment before the socket listens.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut line = encode_request(&Request::List);
    line.push('\n');
    s.write_all(line.as_bytes()).expect("send list");
    s
}

/// One `status` request; the answer line (or the error the server sends when busy).
fn status(path: &Path) -> String {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = encode_request(&Request::Status);
    line.push('\n');
    let _ = s.write_all(line.as_bytes());
    let mut answer = String::new();
    let _ = BufReader::new(s).read_line(&mut answer);
    answer
}

#[test]
fn clients_that_never_read_lose_their_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ctl.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop, rx) = watch::channel(false);
    let owned = path.clone();
    let handler: Arc<dyn ControlHandler> = Arc::new(Big);
    let limits = Limits {
        max_connections: 4,
        write_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let task = rt.spawn(async move { serve_with(&owned, handler, rx, limits).await });
    // The socket file appears at bind; no probe connection (it would hold a slot a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stalled: Vec<UnixStream> = (0..limits.max_connections)
        .map(|_| stalled_client(&path))
        .collect();
    // Accepted in order: the stalled clients hold every slot by now.
    let busy = status(&path);
    assert!(busy.contains("too many control connections"), "{busy:?}");
    // Within the write timeout (and a margin), the stalled clients are dropped: before, they
    // held their slots for as long as they lived.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = status(&path);
        if answer.contains("\"status\"") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stalled);
    let _ = stop.send(true);
    rt.block_on(task).expect("serve task").expect("serve");
}
