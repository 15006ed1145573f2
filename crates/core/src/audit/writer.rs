//! Each device's writer: a thread of its own that owns the sink and the chain. Requests build
//! their lines in parallel and queue them; the writer takes every line queued since its last
//! write, links them into the chain in queue order, writes them with one call, and only then
//! answers each request (which waits without holding a server thread). A write that fails
//! fails every line of it, rewinds the chain, and leaves nothing of the batch in a file.

use super::chain::{Chain, Link};
use super::sink::Sink;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Lines written with one call at most.
const MAX_BATCH: usize = 256;

enum Job {
    /// A line (without its `\n`) whose entry starts at `start` (after the device's prefix).
    Line {
        line: Vec<u8>,
        start: usize,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Reopen the file (log rotation): lines queued before go to the old one.
    Reopen,
}

/// The requests' side of a device's writer. Dropping it lets the writer write what is queued
/// and waits for it to end, so a device built again on the same file resumes a finished chain.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(name: &str, sink: Box<dyn Sink>, chain: Option<Chain>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("audit {name}"))
            .spawn(move || run(queue, sink, chain))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues a line; the answer comes once it is written (or its write failed).
    pub fn queue(&self, line: Vec<u8>, start: usize) -> Written {
        let (done, written) = oneshot::channel();
        let queued = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send(Job::Line { line, start, done }).is_ok());
        Written(queued.then_some(written))
    }

    pub fn reopen(&self) {
        if let Some(j) = &self.jobs {
            let _ = j.send(Job::Reopen);
        }
    }
}

/// A queued line's answer.
pub(super) struct Written(Option<oneshot::Receiver<Result<(), String>>>);

impl Written {
    pub async fn wait(self) -> std::io::Result<()> {
        let stopped = || std::io::Error::other("the audit writer has stopped");
        match self.0.ok_or_else(stopped)?.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(stopped()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(queue: mpsc::Receiver<Job>, mut sink: Box<dyn Sink>, mut chain: Option<Chain>) {
    let mut batch = Batch::default();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Reopen => {
                    batch.write(&mut *sink, &mut chain);
                    if let Err(e) = sink.reopen() {
                        tracing::error!(error = %e, "audit device could not be reopened");
                    }
                }
                Job::Line {
                    mut line,
                    start,
                    done,
                } => {
                    if let Some(c) = &mut chain {
                        // Linked now, in queue order; rewound if the write fails.
                        batch.rewind_to.get_or_insert_with(|| c.last_link());
                        let link = c.seal_serialized(&mut line, start);
                        c.commit(link);
                    }
                    line.push(b'\n');
                    batch.lines.push(line);
                    batch.waiting.push(done);
                }
            }
            if batch.lines.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        batch.write(&mut *sink, &mut chain);
    }
}

/// Lines linked but not yet written, and who waits for them.
#[derive(Default)]
struct Batch {
    lines: Vec<Vec<u8>>,
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
    /// The chain's end before the batch's first line.
    rewind_to: Option<Link>,
}

impl Batch {
    /// Writes the lines at once and answers their requests.
    fn write(&mut self, sink: &mut dyn Sink, chain: &mut Option<Chain>) {
        if self.lines.is_empty() {
            return;
        }
        let written = sink.write_lines(&self.lines);
        if let (Err(_), Some(c), Some(end)) = (&written, chain.as_mut(), self.rewind_to.take()) {
            c.commit(end);
        }
        self.rewind_to = None;
        let outcome = written.map_err(|e| e.to_string());
        for done in self.waiting.drain(..) {
            let _ = done.send(outcome.clone());
        }
        self.lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Records each write's line count; fails one write when told to.
    #[derive(Clone, Default)]
    struct Flaky {
        fail_next: Arc<AtomicBool>,
        text: Arc<Mutex<Vec<u8>>>,
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Sink for Flaky {
        fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
            self.write_lines(&[line.to_vec()])
        }
        fn write_lines(&mut self, lines: &[Vec<u8>]) -> std::io::Result<()> {
            self.batches.lock().push(lines.len());
            if self.fail_next.swap(false, Ordering::SeqCst) {
                return Err(std::io::Error::other("disk full"));
            }
            self.text.lock().extend(lines.concat());
            Ok(())
        }
    }

    fn line(i: usize) -> (Job, oneshot::Receiver<Result<(), String>>) {
        let (done, rx) = oneshot::channel();
        let line = format!("p> {{\"i\":{i}}}").into_bytes();
        (
            Job::Line {
                line,
                start: 3,
                done,
            },
            rx,
        )
    }

    /// Lines queued while the writer is busy go out in one write, in queue order; a failed
    /// write fails each of its lines and rewinds the chain, so the lines after it continue the
    /// chain as if the failed ones had never been linked.
    #[test]
    fn queued_lines_share_a_write_and_a_failed_write_leaves_no_gap() {
        let key = [5u8; 32];
        let sink = Flaky::default();
        let (jobs, queue) = mpsc::channel();
        let mut failed = Vec::new();
        for i in 0..5 {
            let (job, rx) = line(i);
            jobs.send(job).unwrap();
            failed.push(rx);
        }
        sink.fail_next.store(true, Ordering::SeqCst);
        let chain = Chain::resume(&key, std::path::Path::new("/nonexistent/audit.log"));
        let writer = std::thread::spawn({
            let sink = sink.clone();
            move || run(queue, Box::new(sink), Some(chain))
        });
        for rx in failed {
            assert_eq!(rx.blocking_recv().unwrap(), Err("disk full".to_string()));
        }
        let mut written = Vec::new();
        for i in 5..8 {
            let (job, rx) = line(i);
            jobs.send(job).unwrap();
            written.push(rx);
        }
        for rx in written {
            assert_eq!(rx.blocking_recv().unwrap(), Ok(()));
        }
        drop(jobs);
        writer.join().unwrap();
        assert_eq!(
            sink.batches.lock()[0],
            5,
            "queued lines were written one by one"
        );
        let text = String::from_utf8(sink.text.lock().clone()).unwrap();
        assert!(!text.contains("\"i\":4"), "a failed line was kept");
        assert_eq!(super::super::chain::verify(&key, &text), Ok(3), "{text}");
        assert!(
            text.starts_with("p> {\"i\":5,\"chain\":{\"seq\":1,"),
            "{text}"
        );
    }
}
