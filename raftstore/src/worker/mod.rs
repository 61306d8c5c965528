//! Background workers: one thread each, fed by a [`Scheduler`] with a `Task` enum.
//!
//! Workers never touch peer state: whatever they learn goes back through the router as a
//! message. Modules:
//! - [`pd`]: region and store heartbeats to the scheduler (blocking RPCs stay off pollers).
//! - [`snap`]: snapshot generation (raft-core's `SnapGenerator`) and snapshot-file cleanup.
//! - [`split_check`]: region sizes and split keys.
//!
//! Raft-log deletion needs no worker here: raft-core stages the deletion of compacted entries
//! into the peer's next raft-engine batch (a range delete beyond 1024 entries), so it rides the
//! group commit that already happens.

pub mod pd;
pub mod snap;
pub mod split_check;

use std::fmt::Display;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

/// The work a worker thread does.
pub trait Runnable: Send + 'static {
    /// One unit of work.
    type Task: Display + Send + 'static;
    /// Does `task`.
    fn run(&mut self, task: Self::Task);
    /// Called once when the worker stops (after the last task).
    fn shutdown(&mut self) {}
}

enum Msg<T> {
    Task(T),
    Stop,
}

/// Hands tasks to a worker. Cheap to clone.
pub struct Scheduler<T> {
    name: &'static str,
    sender: Sender<Msg<T>>,
}

impl<T> Clone for Scheduler<T> {
    fn clone(&self) -> Self {
        Scheduler {
            name: self.name,
            sender: self.sender.clone(),
        }
    }
}

impl<T: Display + Send + 'static> Scheduler<T> {
    /// Queues `task`; gives it back if the worker has stopped.
    pub fn schedule(&self, task: T) -> Result<(), T> {
        self.sender
            .send(Msg::Task(task))
            .map_err(|e| match e.into_inner() {
                Msg::Task(t) => t,
                Msg::Stop => unreachable!("only tasks are scheduled"),
            })
    }

    /// The worker's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A running worker thread.
pub struct Worker {
    name: &'static str,
    sender: Box<dyn Fn() + Send + Sync>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `runner` on a thread named `thread_name`.
    pub fn start<R: Runnable>(
        name: &'static str,
        thread_name: String,
        mut runner: R,
    ) -> std::io::Result<(Scheduler<R::Task>, Worker)> {
        let (tx, rx) = crossbeam_channel::unbounded::<Msg<R::Task>>();
        let handle = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                for msg in rx.iter() {
                    match msg {
                        Msg::Task(t) => runner.run(t),
                        Msg::Stop => break,
                    }
                }
                runner.shutdown();
            })?;
        let stop_tx = tx.clone();
        Ok((
            Scheduler { name, sender: tx },
            Worker {
                name,
                sender: Box::new(move || {
                    let _ = stop_tx.send(Msg::Stop);
                }),
                handle: Some(handle),
            },
        ))
    }

    /// Stops the worker after the tasks queued so far and joins it.
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            (self.sender)();
            if h.join().is_err() {
                tracing::error!(worker = self.name, "worker thread panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Collect(Arc<Mutex<Vec<u32>>>);

    impl Runnable for Collect {
        type Task = u32;
        fn run(&mut self, task: u32) {
            self.0.lock().unwrap().push(task);
        }
        fn shutdown(&mut self) {
            self.0.lock().unwrap().push(0);
        }
    }

    #[test]
    fn tasks_run_in_order_and_stop_drains_queued_work() {
        let seen = Arc::new(Mutex::new(vec![]));
        let (sched, mut worker) = Worker::start("t", "t".into(), Collect(seen.clone())).unwrap();
        for i in 1..=100 {
            sched.schedule(i).unwrap();
        }
        worker.stop();
        let v = seen.lock().unwrap().clone();
        assert_eq!(v.len(), 101);
        assert_eq!(&v[..100], (1..=100).collect::<Vec<_>>().as_slice());
        assert_eq!(v[100], 0);
        assert_eq!(sched.schedule(7), Err(7));
    }
}
