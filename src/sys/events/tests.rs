use super::output::{Output, Target, write_whole};
use super::*;
use crate::event::{Event, Stamped};
use crate::time::Timestamp;
use governor::clock::FakeRelativeClock;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const BLOCK: &[u8] = b"{\"ts\":\"t1\",\"event\":\"block\",\"ip\":\"203.0.113.7\"}\n";
const UNBLOCK: &[u8] = b"{\"ts\":\"t2\",\"event\":\"unblock\",\"ip\":\"203.0.113.7\"}\n";
const T0: Timestamp = Timestamp(1_795_568_400_000_000);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

// --- The events file ---

#[test]
fn the_file_is_appended_to_and_created_0640() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "earlier\n").unwrap();
    let mut f = EventFile::open(path.clone()).unwrap();
    assert!(f.write_line(BLOCK));
    assert_eq!(read(&path), format!("earlier\n{}", text(BLOCK)));

    let fresh = dir.path().join("fresh.jsonl");
    let _f = EventFile::open(fresh.clone()).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o} is wider than 0640");
}

#[test]
fn a_rotated_file_is_reopened_on_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let rotated = dir.path().join("events.jsonl.1");
    let mut f = EventFile::open(path.clone()).unwrap();
    f.write_line(BLOCK);
    std::fs::rename(&path, &rotated).unwrap(); // what logrotate does
    f.write_line(UNBLOCK);
    assert_eq!(read(&rotated), text(BLOCK));
    assert_eq!(read(&path), text(UNBLOCK));
}

#[test]
fn reopen_starts_a_new_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut f = EventFile::open(path.clone()).unwrap();
    f.write_line(BLOCK);
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    f.reopen();
    assert_eq!(read(&path), "");
    f.write_line(UNBLOCK);
    assert_eq!(read(&path), text(UNBLOCK));
}

#[test]
fn a_failing_file_is_retried_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut f = EventFile::open(path.clone()).unwrap();
    // Rotate, then put a directory where the file was: reopening fails.
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(!f.write_line(BLOCK));
    assert!(!f.write_line(BLOCK));
    // The path is writable again: the next line lands in the file.
    std::fs::remove_dir(&path).unwrap();
    assert!(f.write_line(UNBLOCK));
    assert_eq!(read(&path), text(UNBLOCK));
}

#[test]
fn an_unopenable_file_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("events.jsonl");
    let Err(e) = EventFile::open(path.clone()) else {
        panic!("opened {}", path.display());
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cannot open event file {}: ", path.display())),
        "{msg}"
    );
    assert!(msg.contains("No such file or directory"), "{msg}");
}

// --- Whole lines ---

/// A target that takes `room` bytes, then fails (a disk that fills up mid-line).
struct Filling {
    data: Vec<u8>,
    room: usize,
    /// Whether a failed line can be cut off (a regular file) or not (a pipe).
    seekable: bool,
}

impl Write for Filling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room);
        if n == 0 {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.room -= n;
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Target for Filling {
    fn mark(&mut self) -> Option<u64> {
        self.seekable.then_some(self.data.len() as u64)
    }
    fn rollback(&mut self, mark: u64) -> io::Result<()> {
        self.data.truncate(mark as usize);
        Ok(())
    }
}

#[test]
fn a_line_that_fails_part_way_is_cut_off_again() {
    let mut t = Filling {
        data: Vec::new(),
        room: BLOCK.len() + 10,
        seekable: true,
    };
    let mut torn = false;
    write_whole(&mut t, &mut torn, BLOCK).unwrap();
    assert!(write_whole(&mut t, &mut torn, UNBLOCK).is_err());
    assert_eq!(text(&t.data), text(BLOCK), "nothing of the second line");
    assert!(!torn);
    t.room = 1000; // space again
    write_whole(&mut t, &mut torn, UNBLOCK).unwrap();
    assert_eq!(t.data, [BLOCK, UNBLOCK].concat());
}

#[test]
fn a_fragment_that_cannot_be_cut_off_stands_alone() {
    let mut t = Filling {
        data: Vec::new(),
        room: BLOCK.len() + 10,
        seekable: false,
    };
    let mut torn = false;
    write_whole(&mut t, &mut torn, BLOCK).unwrap();
    assert!(write_whole(&mut t, &mut torn, UNBLOCK).is_err());
    assert!(torn);
    t.room = 1000;
    write_whole(&mut t, &mut torn, UNBLOCK).unwrap();
    assert!(!torn);
    let lines: Vec<&str> = text(&t.data).lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[2].as_bytes(),
        UNBLOCK.trim_ascii_end(),
        "whole after it"
    );
}

#[test]
fn a_real_file_is_truncated_back_after_a_failed_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut torn = false;
    write_whole(&mut f, &mut torn, BLOCK).unwrap();
    // What a failed write leaves: part of a line. Cut back to the mark, as write_whole does.
    let mark = f.mark().unwrap();
    f.write_all(&UNBLOCK[..9]).unwrap();
    f.rollback(mark).unwrap();
    write_whole(&mut f, &mut torn, UNBLOCK).unwrap();
    assert_eq!(read(&path), format!("{}{}", text(BLOCK), text(UNBLOCK)));
}

// --- The log: queues and writer threads ---

/// An output kept in memory; it can be stalled (every write waits) or failing.
#[derive(Clone)]
struct Memory {
    name: &'static str,
    data: Arc<Mutex<Vec<u8>>>,
    stalled: Arc<(Mutex<bool>, Condvar)>,
    failing: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
}

impl Memory {
    fn new(name: &'static str) -> Memory {
        Memory {
            name,
            data: Arc::default(),
            stalled: Arc::default(),
            failing: Arc::default(),
            writes: Arc::default(),
        }
    }
    fn stall(&self, on: bool) {
        *self.stalled.0.lock().unwrap() = on;
        self.stalled.1.notify_all();
    }
    fn lines(&self) -> Vec<String> {
        let d = self.data.lock().unwrap();
        text(&d).lines().map(str::to_string).collect()
    }
}

impl Output for Memory {
    fn name(&self) -> &'static str {
        self.name
    }
    fn write_line(&mut self, line: &[u8]) -> bool {
        let (lock, cv) = &*self.stalled;
        let mut stalled = lock.lock().unwrap();
        while *stalled {
            stalled = cv.wait(stalled).unwrap();
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.failing.load(Ordering::Relaxed) {
            return false;
        }
        self.data.lock().unwrap().extend_from_slice(line);
        true
    }
}

fn log_of(outputs: &[&Memory], per_sec: u32) -> EventLog<FakeRelativeClock> {
    let boxed = outputs
        .iter()
        .map(|m| Box::new((*m).clone()) as Box<dyn Output>)
        .collect();
    EventLog::with_outputs(boxed, per_sec, FakeRelativeClock::default()).unwrap()
}

fn unblock_event(i: u32) -> Stamped {
    Event::Fatal {
        error: format!("e{i}"),
    }
    .at(T0)
}

#[test]
fn lines_reach_every_output_in_order() {
    let (out, file) = (Memory::new("stdout"), Memory::new("file"));
    let log = log_of(&[&out, &file], 20);
    for i in 0..100 {
        log.emit(unblock_event(i));
    }
    assert!(log.close(Duration::from_secs(5)));
    for m in [&out, &file] {
        let lines = m.lines();
        assert_eq!(lines.len(), 100);
        assert!(lines[99].contains("\"e99\""), "{}", lines[99]);
        assert!(lines[0].starts_with(r#"{"ts":"2026-11-25T01:00:00.000Z","event":"fatal""#));
    }
    assert_eq!(log.dropped(), 0);
}

#[test]
fn a_stalled_output_never_blocks_emit_or_the_other_output() {
    let (out, file) = (Memory::new("stdout"), Memory::new("file"));
    out.stall(true);
    let log = log_of(&[&out, &file], 20);
    let n = MAX_QUEUED_LINES as u32 + 1000;
    let started = std::time::Instant::now();
    for i in 0..n {
        log.emit(unblock_event(i));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "emit waited");
    // stdout holds a full queue and the batch its writer took (up to 256 lines, the first in
    // the stalled write); the rest was dropped.
    let dropped = u64::from(n) - MAX_QUEUED_LINES as u64;
    assert!(
        (dropped - 256..dropped).contains(&log.dropped()),
        "{}",
        log.dropped()
    );
    assert_eq!(log.dropped_by_output()[1], ("file", 0));
    // The file got everything meanwhile.
    let all = wait_until(|| file.lines().len() == n as usize);
    assert!(all, "the file has {} lines", file.lines().len());

    // stdout takes lines again: after its first batch, how many were left out, once.
    out.stall(false);
    assert!(log.close(Duration::from_secs(5)));
    let lines = out.lines();
    let reports: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(r#""event":"events_dropped""#))
        .collect();
    assert_eq!(reports.len(), 1, "one report");
    assert!(
        reports[0] <= 256,
        "reported after the first batch: {}",
        reports[0]
    );
    let report = &lines[reports[0]];
    let count = format!(r#""count":{},"output":"stdout"}}"#, log.dropped());
    assert!(report.ends_with(&count), "{report}");
    assert_eq!(lines.len() as u64, u64::from(n) - log.dropped() + 1);
}

#[test]
fn decisions_keep_room_an_informational_burst_cannot_take() {
    let out = Memory::new("stdout");
    out.stall(true);
    let log = log_of(&[&out], 0);
    let applied = || {
        Event::Applied {
            blocks: 1,
            unblocks: 0,
            commit_ms: 1.0,
            reaction_ms: None,
        }
        .at(T0)
    };
    for _ in 0..MAX_QUEUED_LINES * 2 {
        log.emit(applied());
    }
    let before = log.dropped();
    for i in 0..1000 {
        log.emit(unblock_event(i));
    }
    assert_eq!(log.dropped(), before, "a decision was dropped");
    out.stall(false);
    assert!(log.close(Duration::from_secs(5)));
}

#[test]
fn failed_writes_count_as_dropped_and_are_reported_once_writes_work() {
    let out = Memory::new("file");
    out.failing.store(true, Ordering::Relaxed);
    let log = log_of(&[&out], 20);
    for i in 0..3 {
        log.emit(unblock_event(i));
    }
    let tried = wait_until(|| out.writes.load(Ordering::Relaxed) >= 4);
    assert!(tried);
    assert_eq!(log.dropped(), 3);
    out.failing.store(false, Ordering::Relaxed);
    log.emit(unblock_event(3));
    assert!(log.close(Duration::from_secs(5)));
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"e3\""));
    assert!(lines[1].contains(r#""event":"events_dropped","count":3,"output":"file""#));
}

#[test]
fn close_gives_up_on_a_stuck_output_within_its_bound() {
    let out = Memory::new("stdout");
    out.stall(true);
    let log = log_of(&[&out], 20);
    log.emit(unblock_event(0));
    log.emit(unblock_event(1));
    let started = std::time::Instant::now();
    assert!(!log.close(Duration::from_millis(200)));
    assert!(started.elapsed() < Duration::from_secs(2));
    out.stall(false);
}

#[test]
fn a_symbolic_link_is_never_written_through() {
    use super::output::Output;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let path = dir.path().join("events.jsonl");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let Err(e) = super::EventFile::open(path.clone()) else {
        panic!("opened a link");
    };
    assert!(e.to_string().contains("symbolic link"), "{e}");
    // Planted after a rotation: the line is dropped (counted by the queue), the link's target
    // is untouched.
    std::fs::remove_file(&path).unwrap();
    let mut file = super::EventFile::open(path.clone()).unwrap();
    assert!(file.write_line(BLOCK));
    std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    assert!(!file.write_line(BLOCK));
    file.reopen();
    assert!(!file.write_line(BLOCK));
    assert_eq!(read(&victim), "precious\n");
    assert_eq!(read(&dir.path().join("events.jsonl.1")).as_bytes(), BLOCK);
}

#[test]
fn suppressed_events_beyond_the_quota_are_dropped_and_counted() {
    let clock = FakeRelativeClock::default();
    let out = Memory::new("stdout");
    let log = EventLog::with_outputs(vec![Box::new(out.clone())], 3, clock.clone()).unwrap();
    let suppressed = suppressed_event();
    for _ in 0..5 {
        log.emit(suppressed.clone());
    }
    // Other kinds are never limited, even when the quota is spent.
    for i in 0..5 {
        log.emit(unblock_event(i));
    }
    assert_eq!(log.dropped_suppressed(), 2);
    log.flush_dropped(T0);
    log.flush_dropped(Timestamp(T0.0 + 1_000_000)); // nothing new: no line
    // A second later the quota is back.
    clock.advance(Duration::from_secs(1));
    for _ in 0..4 {
        log.emit(suppressed.clone());
    }
    assert_eq!(log.dropped_suppressed(), 3);
    assert!(log.close(Duration::from_secs(5)));
    let all = out.lines().join("\n");
    assert_eq!(all.matches("\"suppressed\"").count(), 6);
    assert_eq!(all.matches("\"fatal\"").count(), 5);
    assert_eq!(all.matches("suppressed_dropped").count(), 1);
    assert!(
        all.contains(r#"{"ts":"2026-11-25T01:00:00.000Z","event":"suppressed_dropped","count":2}"#)
    );
    assert_eq!(log.dropped(), 0, "rate-limited events are not output drops");
}

#[test]
fn a_zero_quota_means_no_limit() {
    let out = Memory::new("stdout");
    let log = log_of(&[&out], 0);
    let suppressed = suppressed_event();
    for _ in 0..100 {
        log.emit(suppressed.clone());
    }
    assert!(log.close(Duration::from_secs(5)));
    assert_eq!(log.dropped_suppressed(), 0);
    assert_eq!(out.lines().len(), 100);
}

#[test]
fn a_sighup_reopen_reaches_the_file_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let file = EventFile::open(path.clone()).unwrap();
    let log =
        EventLog::with_outputs(vec![Box::new(file)], 20, FakeRelativeClock::default()).unwrap();
    log.emit(unblock_event(0));
    assert!(wait_until(|| read(&path).contains("\"e0\"")));
    std::fs::rename(&path, dir.path().join("old")).unwrap();
    // No line is written: only the reopen can create the file again.
    log.reopen();
    assert!(wait_until(|| path.exists()), "not reopened");
    log.emit(unblock_event(1));
    assert!(log.close(Duration::from_secs(5)));
    assert!(read(&path).contains("\"e1\""));
    assert!(read(&dir.path().join("old")).contains("\"e0\""));
}

/// Polls `f` for up to 5 s.
fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}

fn suppressed_event() -> Stamped {
    Event::Suppressed(crate::event::DecisionFields {
        ip: "10.0.0.1".into(),
        rule: Arc::from("syn-flood"),
        reason: Some("allowlist"),
        peer: None,
        measure: None,
        ban_secs: 600,
        offense: 1,
        until: T0,
        manual: false,
        dry_run: false,
        comment: None,
        origin: None,
    })
    .at(T0)
}
