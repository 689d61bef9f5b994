use super::*;
use governor::clock::FakeRelativeClock;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const BLOCK: &str = r#"{"ts":"t1","event":"block","ip":"203.0.113.7","rule":"syn-flood"}"#;
const UNBLOCK: &str = r#"{"ts":"t2","event":"unblock","ip":"203.0.113.7","rule":"syn-flood"}"#;
const SUPPRESSED: &str =
    r#"{"ts":"t1","event":"suppressed","ip":"10.0.0.1","rule":"syn-flood","reason":"allowlist"}"#;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn stdout_text<C: Clock>(sink: &EventSink<Vec<u8>, C>) -> String {
    String::from_utf8(sink.writer().clone()).unwrap()
}

#[test]
fn lines_go_to_stdout_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    sink.emit("block", BLOCK);
    sink.emit("unblock", UNBLOCK);
    let expected = format!("{BLOCK}\n{UNBLOCK}\n");
    assert_eq!(stdout_text(&sink), expected);
    assert_eq!(read(&path), expected);
}

#[test]
fn the_file_is_appended_to_and_created_0640() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "earlier\n").unwrap();
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    sink.emit("block", BLOCK);
    assert_eq!(read(&path), format!("earlier\n{BLOCK}\n"));

    let fresh = dir.path().join("fresh.jsonl");
    let _sink = EventSink::with_writer(Vec::new(), Some(fresh.clone()), 20).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o} is wider than 0640");
}

#[test]
fn without_a_file_only_stdout_is_written() {
    let mut sink = EventSink::with_writer(Vec::new(), None, 20).unwrap();
    sink.emit("block", BLOCK);
    assert_eq!(stdout_text(&sink), format!("{BLOCK}\n"));
    assert!(sink.reopen().is_ok());
}

#[test]
fn a_rotated_file_is_reopened_on_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let rotated = dir.path().join("events.jsonl.1");
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    sink.emit("block", BLOCK);
    std::fs::rename(&path, &rotated).unwrap(); // what logrotate does
    sink.emit("unblock", UNBLOCK);
    assert_eq!(read(&rotated), format!("{BLOCK}\n"));
    assert_eq!(read(&path), format!("{UNBLOCK}\n"));
}

#[test]
fn reopen_starts_a_new_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    sink.emit("block", BLOCK);
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    sink.reopen().unwrap();
    assert_eq!(read(&path), "");
    sink.emit("unblock", UNBLOCK);
    assert_eq!(read(&path), format!("{UNBLOCK}\n"));
}

#[test]
fn a_failing_file_never_stops_stdout_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    // Rotate, then put a directory where the file was: reopening fails.
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    std::fs::create_dir(&path).unwrap();
    sink.emit("block", BLOCK);
    sink.emit("block", BLOCK);
    assert!(sink.reopen().is_err());
    assert_eq!(stdout_text(&sink), format!("{BLOCK}\n{BLOCK}\n"));
    // The path is writable again: the next event lands in the file.
    std::fs::remove_dir(&path).unwrap();
    sink.emit("unblock", UNBLOCK);
    assert_eq!(read(&path), format!("{UNBLOCK}\n"));
}

/// A stdout that is gone (closed pipe).
struct Broken;
impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn a_failing_stdout_never_stops_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut sink = EventSink::with_writer(Broken, Some(path.clone()), 20).unwrap();
    sink.emit("block", BLOCK);
    sink.emit("unblock", UNBLOCK);
    assert_eq!(read(&path), format!("{BLOCK}\n{UNBLOCK}\n"));
}

#[test]
fn an_unopenable_file_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("events.jsonl");
    let Err(e) = EventSink::with_writer(Vec::new(), Some(path.clone()), 20) else {
        panic!("opened {}", path.display());
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cannot open event file {}: ", path.display())),
        "{msg}"
    );
    assert!(msg.contains("No such file or directory"), "{msg}");
}

#[test]
fn a_symbolic_link_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let path = dir.path().join("events.jsonl");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let Err(e) = EventSink::with_writer(Vec::new(), Some(path.clone()), 20) else {
        panic!("opened a link");
    };
    assert!(e.to_string().contains("is a symbolic link"), "{e}");
    // Planted after a rotation: stdout goes on, the link's target is untouched.
    std::fs::remove_file(&path).unwrap();
    let mut sink = EventSink::with_writer(Vec::new(), Some(path.clone()), 20).unwrap();
    std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    sink.emit("block", BLOCK);
    assert_eq!(stdout_text(&sink), format!("{BLOCK}\n"));
    assert_eq!(read(&victim), "precious\n");
}

#[test]
fn suppressed_events_beyond_the_quota_are_dropped_and_counted() {
    let clock = FakeRelativeClock::default();
    let mut sink = EventSink::with_writer_and_clock(Vec::new(), None, 3, clock.clone()).unwrap();
    for _ in 0..5 {
        sink.emit("suppressed", SUPPRESSED);
    }
    // Other kinds are never limited, even when the quota is spent.
    for _ in 0..5 {
        sink.emit("block", BLOCK);
    }
    assert_eq!(sink.dropped_suppressed(), 2);
    let out = stdout_text(&sink);
    assert_eq!(out.matches("\"suppressed\"").count(), 3);
    assert_eq!(out.matches("\"block\"").count(), 5);

    sink.flush_dropped("2026-11-25T01:00:00.000000Z");
    sink.flush_dropped("2026-11-25T01:00:01.000000Z"); // nothing new: no line
    let out = stdout_text(&sink);
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        r#"{"ts":"2026-11-25T01:00:00.000000Z","event":"suppressed_dropped","count":2}"#
    );
    assert_eq!(out.matches("suppressed_dropped").count(), 1);

    // A second later the quota is back.
    clock.advance(Duration::from_secs(1));
    for _ in 0..4 {
        sink.emit("suppressed", SUPPRESSED);
    }
    assert_eq!(sink.dropped_suppressed(), 3);
    assert_eq!(stdout_text(&sink).matches("\"suppressed\"").count(), 6);
}

#[test]
fn a_zero_quota_means_no_limit() {
    let mut sink =
        EventSink::with_writer_and_clock(Vec::new(), None, 0, FakeRelativeClock::default())
            .unwrap();
    for _ in 0..100 {
        sink.emit("suppressed", SUPPRESSED);
    }
    assert_eq!(sink.dropped_suppressed(), 0);
    assert_eq!(stdout_text(&sink).lines().count(), 100);
}
