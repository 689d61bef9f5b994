//! One output's writer thread: takes lines from its [`LineQueue`] and writes them, and once
//! lines were left out (the queue was full, or writes failed) and a write works again, says
//! how many with an `events_dropped` line on that same output.

use std::sync::Arc;

use super::output::Output;
use super::queue::LineQueue;
use crate::event::Event;
use crate::sys::clock::wall_now;

/// Runs until the queue is closed and drained. Blocked writes block only this thread.
pub fn run(queue: &LineQueue, out: &mut dyn Output) {
    let mut batch: Vec<Arc<str>> = Vec::new();
    loop {
        let taken = queue.take(&mut batch);
        if taken.reopen {
            out.reopen();
        }
        for line in batch.drain(..) {
            if !out.write_line(line.as_bytes()) {
                queue.count_dropped(1);
            }
        }
        report_dropped(queue, out);
        if taken.closed {
            return;
        }
    }
}

/// Writes `events_dropped` when lines were left out since the last report.
fn report_dropped(queue: &LineQueue, out: &mut dyn Output) {
    let count = queue.unreported();
    if count == 0 {
        return;
    }
    let event = Event::EventsDropped {
        count,
        output: out.name(),
    };
    let mut line = event.at(wall_now()).line();
    line.push('\n');
    if out.write_line(line.as_bytes()) {
        queue.reported(count);
    }
}
