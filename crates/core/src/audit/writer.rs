//! Each device's writer: group commit without a thread of its own. Requests build their lines
//! in parallel and queue them; the request that finds no write under way becomes the leader:
//! it yields once (so the requests ready on its worker queue their lines too), then takes every
//! line queued, links them into the chain in queue order, writes them with one call, answers
//! each request, and goes on until the queue is empty. The others wait without holding a server
//! thread, and none is answered before its line is written. A write that fails fails every
//! line of it, rewinds the chain, and leaves nothing of the batch in a file.
//!
//! Why no writer thread: handing each line to a thread and its answer back cost two context
//! switches per batch, and batches stayed small because the thread woke at the first line; on
//! a server with one core that was most of an audited request's cost (bench/README.md, "Audit,
//! third step"). Writes to a file are short (a buffered append); a socket sink's may wait on
//! its peer (2 s timeout), so the leader first hands its worker's other tasks to another
//! thread (`block_in_place`).

use super::chain::{Chain, Link};
use super::sink::Sink;
use parking_lot::Mutex;
use tokio::runtime::RuntimeFlavor;
use tokio::sync::oneshot;

/// Lines written with one call at most.
const MAX_BATCH: usize = 256;

/// A line (without its `\n`) whose entry starts at `start` (after the device's prefix), and
/// who waits for it.
struct Queued {
    line: Vec<u8>,
    start: usize,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct Queue {
    lines: Vec<Queued>,
    /// A leader is writing (or about to): lines queued now are its to write.
    leading: bool,
}

/// What only the leader touches.
struct Output {
    sink: Box<dyn Sink>,
    chain: Option<Chain>,
}

pub(super) struct Writer {
    queue: Mutex<Queue>,
    output: Mutex<Output>,
    /// The sink may wait on the network ([`Sink::may_block`]).
    may_block: bool,
}

impl Writer {
    pub fn new(sink: Box<dyn Sink>, chain: Option<Chain>) -> Self {
        Writer {
            queue: Mutex::default(),
            may_block: sink.may_block(),
            output: Mutex::new(Output { sink, chain }),
        }
    }

    /// Queues a line; [`Written::wait`] answers once it is written (or its write failed).
    pub fn queue(&self, line: Vec<u8>, start: usize) -> Written<'_> {
        let (done, written) = oneshot::channel();
        let mut q = self.queue.lock();
        q.lines.push(Queued { line, start, done });
        let lead = !std::mem::replace(&mut q.leading, true);
        Written {
            answer: written,
            leader: lead.then(|| Leader(self)),
        }
    }

    /// Reopens the file (log rotation): lines queued before go to the old one.
    pub fn reopen(&self) {
        let mut output = self.output.lock();
        let mut queued = std::mem::take(&mut self.queue.lock().lines);
        output.write(&mut queued);
        if let Err(e) = output.sink.reopen() {
            tracing::error!(error = %e, "audit device could not be reopened");
        }
    }

    /// Writes what is queued, batch after batch, until nothing is; then stops leading.
    fn drain(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut q = self.queue.lock();
                if q.lines.is_empty() {
                    q.leading = false;
                    return;
                }
                let n = q.lines.len().min(MAX_BATCH);
                batch.extend(q.lines.drain(..n));
            }
            let mut write = || self.output.lock().write(&mut batch);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) if self.may_block && rt.runtime_flavor() == RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(write)
                }
                _ => write(),
            }
        }
    }
}

impl Output {
    /// Links the lines, writes them at once, and answers their requests.
    fn write(&mut self, batch: &mut Vec<Queued>) {
        if batch.is_empty() {
            return;
        }
        let mut rewind_to: Option<Link> = None;
        let mut lines = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for Queued {
            mut line,
            start,
            done,
        } in batch.drain(..)
        {
            if let Some(c) = &mut self.chain {
                // Linked now, in queue order; rewound if the write fails.
                rewind_to.get_or_insert_with(|| c.last_link());
                let link = c.seal_serialized(&mut line, start);
                c.commit(link);
            }
            line.push(b'\n');
            lines.push(line);
            waiting.push(done);
        }
        let written = self.sink.write_lines(&lines);
        if let (Err(_), Some(c), Some(end)) = (&written, self.chain.as_mut(), rewind_to) {
            c.commit(end);
        }
        let outcome = written.map_err(|e| e.to_string());
        for done in waiting {
            let _ = done.send(outcome.clone());
        }
    }
}

/// The leader's duty: dropped (after its yield, or when its request is cancelled), it writes
/// every queued line, so no line waits for a leader that is gone.
struct Leader<'w>(&'w Writer);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.drain();
    }
}

/// A queued line's answer.
pub(super) struct Written<'w> {
    answer: oneshot::Receiver<Result<(), String>>,
    leader: Option<Leader<'w>>,
}

impl Written<'_> {
    pub async fn wait(self) -> std::io::Result<()> {
        if let Some(leader) = self.leader {
            // The requests ready on this worker queue their lines before the write.
            tokio::task::yield_now().await;
            drop(leader);
        }
        match self.answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("the audit writer has stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Records each write's line count; fails one write when told to.
    #[derive(Clone, Default)]
    struct Flaky {
        fail_next: Arc<AtomicBool>,
        may_block: bool,
        text: Arc<Mutex<Vec<u8>>>,
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Sink for Flaky {
        fn may_block(&self) -> bool {
            self.may_block
        }
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

    fn line(i: usize) -> Vec<u8> {
        format!("p> {{\"i\":{i}}}").into_bytes()
    }

    /// Lines queued while a leader is pending go out in one write, in queue order; a failed
    /// write fails each of its lines and rewinds the chain, so the lines after it continue the
    /// chain as if the failed ones had never been linked.
    #[tokio::test]
    async fn queued_lines_share_a_write_and_a_failed_write_leaves_no_gap() {
        let key = [5u8; 32];
        let sink = Flaky::default();
        let chain = Chain::resume(&key, std::path::Path::new("/nonexistent/audit.log"));
        let writer = Writer::new(Box::new(sink.clone()), Some(chain));
        sink.fail_next.store(true, Ordering::SeqCst);
        let failed: Vec<_> = (0..5).map(|i| writer.queue(line(i), 3)).collect();
        assert!(failed[0].leader.is_some() && failed[1..].iter().all(|w| w.leader.is_none()));
        for w in failed {
            // The leader (first) writes them all; the others' answers come from its write.
            assert_eq!(w.wait().await.unwrap_err().to_string(), "disk full");
        }
        let written: Vec<_> = (5..8).map(|i| writer.queue(line(i), 3)).collect();
        for w in written {
            w.wait().await.unwrap();
        }
        assert_eq!(
            *sink.batches.lock(),
            [5, 3],
            "queued lines were not batched"
        );
        let text = String::from_utf8(sink.text.lock().clone()).unwrap();
        assert!(!text.contains("\"i\":4"), "a failed line was kept");
        assert_eq!(super::super::chain::verify(&key, &text), Ok(3), "{text}");
        assert!(
            text.starts_with("p> {\"i\":5,\"chain\":{\"seq\":1,"),
            "{text}"
        );
    }

    /// A leader whose request is dropped before it wrote still writes what was queued: the
    /// followers are answered.
    #[tokio::test]
    async fn a_cancelled_leader_still_writes_the_queue() {
        let sink = Flaky::default();
        let writer = Writer::new(Box::new(sink.clone()), None);
        let leader = writer.queue(line(1), 3);
        let follower = writer.queue(line(2), 3);
        drop(leader);
        follower.wait().await.unwrap();
        assert_eq!(*sink.batches.lock(), [2]);
        // Leading ended with the queue: the next line leads again.
        let next = writer.queue(line(3), 3);
        assert!(next.leader.is_some());
        next.wait().await.unwrap();
    }

    /// Many tasks on several workers: every line written exactly once, the chain intact; with
    /// a sink that may block too (written with the worker's other tasks moved off it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_each_get_their_line_written() {
        for may_block in [false, true] {
            let key = [9u8; 32];
            let sink = Flaky {
                may_block,
                ..Flaky::default()
            };
            let chain = Chain::resume(&key, std::path::Path::new("/nonexistent/audit.log"));
            let writer = Arc::new(Writer::new(Box::new(sink.clone()), Some(chain)));
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        for i in 0..50 {
                            writer.queue(line(t * 1000 + i), 3).wait().await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let text = String::from_utf8(sink.text.lock().clone()).unwrap();
            assert_eq!(super::super::chain::verify(&key, &text), Ok(64 * 50));
            for t in 0..64 {
                for i in 0..50 {
                    let needle = format!("{{\"i\":{},", t * 1000 + i);
                    assert_eq!(text.matches(&needle).count(), 1, "{needle}");
                }
            }
        }
    }
}
