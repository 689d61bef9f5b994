//! The CLI's end of the control socket: one blocking request, one response, within a timeout.
//! Connection failures become the errors an operator can act on ("no daemon is running",
//! "root-only").

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::ControlError;
use super::protocol::{Request, Response, decode_response, encode_request};

/// Longest response line accepted: a list of 100k bans fits.
pub const MAX_RESPONSE: usize = 64 << 20;

/// Sends `req` to the daemon at `path` and waits up to `timeout` for each read and write.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let stream = UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
    let timeout = timeout.max(Duration::from_millis(1));
    let io = |what| move |e| ControlError::io(what, path, e);
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io("cannot set a timeout on"))?;
    let timed_out = |e: std::io::Error, what| {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            ControlError::Timeout {
                path: path.to_owned(),
                timeout,
            }
        } else {
            ControlError::io(what, path, e)
        }
    };
    let mut line = encode_request(req);
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| timed_out(e, "cannot send to"))?;
    let mut reader = BufReader::new(&stream).take(MAX_RESPONSE as u64 + 1);
    let mut buf = Vec::new();
    reader
        .read_until(b'\n', &mut buf)
        .map_err(|e| timed_out(e, "cannot read from"))?;
    if buf.len() > MAX_RESPONSE {
        return Err(ControlError::TooLong {
            path: path.to_owned(),
            limit: MAX_RESPONSE,
        });
    }
    if !buf.ends_with(b"\n") {
        return Err(ControlError::Closed {
            path: path.to_owned(),
        });
    }
    Ok(decode_response(&buf)?)
}

fn connect_error(path: &Path, e: std::io::Error) -> ControlError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ControlError::NoDaemon {
            path: path.to_owned(),
            // What sd_booted(3) checks.
            systemd: Path::new("/run/systemd/system").is_dir(),
        },
        ErrorKind::PermissionDenied => ControlError::PermissionDenied {
            path: path.to_owned(),
        },
        _ => ControlError::io("cannot connect to", path, e),
    }
}
