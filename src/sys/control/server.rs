//! The daemon's end of the control socket (I/O edge, tokio).
//!
//! [`serve`] owns the socket file from bind to shutdown: it creates the parent directory (0700)
//! if missing, replaces a stale socket only when nothing answers on it, binds, restricts the
//! socket to its owner (0600), and removes it again on shutdown (or when the future is dropped),
//! unless another process has replaced it meanwhile.
//!
//! Each connection is a task reading request lines; each request is answered by the
//! [`ControlHandler`] on the blocking pool, so a handler may block on a channel to the engine
//! thread. Bad input gets a [`Response::Error`] line, never a panic; an over-long line, an idle
//! connection, or one whose answer is not read within [`WRITE_TIMEOUT`] is closed; connections
//! beyond [`MAX_CONNECTIONS`] get an error and are closed ([`Limits`]).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

use super::ControlError;
use super::protocol::{Request, Response, decode_request, encode_response};

/// Longest request line: a bulk ban of ~20k targets fits.
pub const MAX_LINE: usize = 1 << 20;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An answer the client has not taken within this long closes the connection: a client that
/// sends requests and never reads would otherwise hold its slot forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one connection may hold, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are answered with an error and closed.
    pub max_connections: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// A connection whose answer is not taken within this long is closed.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        }
    }
}

/// The daemon's answer to each request. Called on tokio's blocking pool: it may block (e.g. send
/// to the engine thread and wait for the reply), but should answer within seconds, since the CLI
/// gives up after its timeout.
pub trait ControlHandler: Send + Sync {
    /// The answer to `req`.
    fn handle(&self, req: Request) -> Response;
}

/// Serves the control socket at `path` until `shutdown` becomes `true` (or its sender is
/// dropped), then removes the socket file. Errors only at startup: the directory cannot be made,
/// another daemon answers on `path`, `path` is not a socket, or bind/chmod fails.
pub async fn serve(
    path: &Path,
    handler: Arc<dyn ControlHandler>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    serve_with(path, handler, shutdown, Limits::default()).await
}

/// [`serve`] with other [`Limits`].
pub async fn serve_with(
    path: &Path,
    handler: Arc<dyn ControlHandler>,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
) -> Result<(), ControlError> {
    let bound = Bound::new(path).await?;
    bound.serve_with(handler, shutdown, limits).await;
    Ok(())
}

/// The control socket, bound and listening (connections wait in its backlog) but not served
/// yet: the daemon binds it before it tells the service manager it is ready.
pub struct Bound {
    listener: UnixListener,
    _file: SocketFile,
}

impl Bound {
    /// Binds `path` (see [`serve`] for what can fail).
    pub async fn new(path: &Path) -> Result<Bound, ControlError> {
        let (listener, file) = bind(path).await?;
        Ok(Bound {
            listener,
            _file: file,
        })
    }

    /// Serves until `shutdown` becomes `true`, then removes the socket file.
    pub async fn serve(self, handler: Arc<dyn ControlHandler>, shutdown: watch::Receiver<bool>) {
        self.serve_with(handler, shutdown, Limits::default()).await;
    }

    /// [`Bound::serve`] with other [`Limits`].
    pub async fn serve_with(
        self,
        handler: Arc<dyn ControlHandler>,
        shutdown: watch::Receiver<bool>,
        limits: Limits,
    ) {
        accept_loop(&self.listener, handler, shutdown, limits).await;
    }
}

async fn accept_loop(
    listener: &UnixListener,
    handler: Arc<dyn ControlHandler>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conn_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = Arc::clone(&handler);
                    let shutdown = conn_shutdown.clone();
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(async move {
                                connection(stream, handler, shutdown, limits).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            tokio::spawn(refuse_busy(stream, limits));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving, but do not spin.
                    tracing::warn!(target: "autoblock::sys::control", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Resolves once shutdown is asked for, or its sender is gone (the daemon is exiting anyway).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in the caller's `select!`.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// Removes the socket file it was made for, if that file is still ours (same inode).
struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ControlError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ControlError::io("cannot create the socket directory", dir, e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ControlError::NotASocket {
                path: path.to_owned(),
            });
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(ControlError::AlreadyRunning {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(|e| ControlError::io("cannot remove the stale socket", path, e))?;
            }
            Err(e) => {
                return Err(ControlError::io(
                    "cannot probe the existing socket",
                    path,
                    e,
                ));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ControlError::io("cannot inspect", path, e)),
    }
    let listener =
        UnixListener::bind(path).map_err(|e| ControlError::io("cannot bind", path, e))?;
    let ino = std::fs::symlink_metadata(path)
        .map_err(|e| ControlError::io("cannot inspect", path, e))?
        .ino();
    let guard = SocketFile {
        path: path.to_owned(),
        ino,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ControlError::io("cannot set mode 0600 on", path, e))?;
    Ok((listener, guard))
}

/// Reads request lines and answers each until EOF, an over-long line, idleness, an answer not
/// taken in time, or shutdown.
async fn connection(
    stream: UnixStream,
    handler: Arc<dyn ControlHandler>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        let mut limited = (&mut reader).take(limit);
        let read = tokio::select! {
            () = stopped(&mut shutdown) => return,
            r = tokio::time::timeout(limits.idle_timeout, limited.read_until(b'\n', &mut line)) => r,
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let (response, keep_going) = if line.len() > MAX_LINE {
            let message = format!("request line longer than {MAX_LINE} bytes; split the request");
            (Response::Error { message }, false)
        } else if !line.ends_with(b"\n") {
            // EOF in the middle of a line: answer it, then the peer is gone anyway.
            (answer(&line, &handler).await, false)
        } else {
            (answer(&line, &handler).await, true)
        };
        let mut out = encode_response(&response);
        out.push('\n');
        let written = tokio::time::timeout(limits.write_timeout, write.write_all(out.as_bytes()));
        if !matches!(written.await, Ok(Ok(()))) || !keep_going {
            return;
        }
    }
}

async fn answer(line: &[u8], handler: &Arc<dyn ControlHandler>) -> Response {
    let req = match decode_request(line) {
        Ok(req) => req,
        Err(e) => {
            return Response::Error {
                message: format!("bad request: {e}"),
            };
        }
    };
    let handler = Arc::clone(handler);
    match tokio::task::spawn_blocking(move || handler.handle(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(target: "autoblock::sys::control", error = %e, "control handler failed");
            Response::Error {
                message: "internal error in the daemon while answering; see its log".into(),
            }
        }
    }
}

async fn refuse_busy(mut stream: UnixStream, limits: Limits) {
    let message = format!(
        "too many control connections (limit {}); try again",
        limits.max_connections
    );
    let mut out = encode_response(&Response::Error { message });
    out.push('\n');
    let _ = tokio::time::timeout(limits.write_timeout, stream.write_all(out.as_bytes())).await;
}
