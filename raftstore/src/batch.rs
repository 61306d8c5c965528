//! A small batch system: FSMs with mailboxes, scheduled onto a bounded pool of poller threads.
//!
//! ```text
//!  sender ──msg──▶ mailbox (channel) ──if the FSM was idle──▶ scheduler channel ──▶ poller
//!                    │ parked FSM                                                   │
//!                    └──────────── released after the round (idle again) ◀──────────┘
//! ```
//!
//! Each FSM is owned by exactly one party at a time: parked in its mailbox (idle), queued in the
//! scheduler channel, or held by one poller (notified). Sending a message to an idle FSM takes it
//! out of its mailbox and queues it; sending to a notified FSM only enqueues the message, which
//! the poller holding it will see. A poller handles a *batch* of FSMs per round (the
//! [`PollHandler`] decides what a round does: the raft poller group-commits every peer's Ready
//! with one fsync, the apply poller writes every region's entries in one kv batch).
//!
//! The release race (a message arrives while the poller parks the FSM) is closed by ordering:
//! the poller parks the FSM, flips the state to idle, and then checks the channel again; a
//! sender enqueues, then tries to flip idle → notified. Whichever sees the other's step
//! schedules the FSM, and only the one that wins the flip does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

/// Something scheduled onto pollers.
pub trait Fsm: Send + 'static {
    /// What its mailbox carries.
    type Message: Send + 'static;

    /// Whether it stopped for good (its mailbox is closed and it is dropped after the round).
    fn is_stopped(&self) -> bool;

    /// Whether it has work left that no message will announce (e.g. a Ready raft-rs produced
    /// while the last one was handled); the poller then queues it again instead of parking it.
    fn has_pending_work(&self) -> bool {
        false
    }

    /// Its own mailbox (to release it after a round).
    fn mailbox(&self) -> &BasicMailbox<Self>
    where
        Self: Sized;
}

const IDLE: u8 = 0;
const NOTIFIED: u8 = 1;
const CLOSED: u8 = 2;

struct FsmState<F> {
    status: AtomicU8,
    parked: Mutex<Option<Box<F>>>,
}

/// How an FSM gets onto a poller.
pub trait FsmScheduler: Clone + Send + Sync + 'static {
    /// The FSM type.
    type Fsm: Fsm;
    /// Queues `fsm` for a poller.
    fn schedule(&self, fsm: Box<Self::Fsm>);
}

/// A message could not be delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<M> {
    /// The mailbox holds too many messages; the message comes back.
    Full(M),
    /// The FSM stopped (or the system shut down); the message comes back.
    Closed(M),
}

impl<M> SendError<M> {
    /// The undelivered message.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }
}

/// The sending side of an FSM: its channel plus its ownership state. Cheap to clone.
pub struct BasicMailbox<F: Fsm> {
    sender: Sender<F::Message>,
    state: Arc<FsmState<F>>,
}

impl<F: Fsm> Clone for BasicMailbox<F> {
    fn clone(&self) -> Self {
        BasicMailbox {
            sender: self.sender.clone(),
            state: self.state.clone(),
        }
    }
}

/// What releasing an FSM after a round led to.
pub(crate) enum Released<F> {
    /// It is parked (idle) in its mailbox.
    Parked,
    /// Messages arrived while it was being parked: the caller must queue it.
    Reschedule(Box<F>),
    /// The mailbox was closed: the caller drops it.
    Closed(Box<F>),
}

impl<F: Fsm> BasicMailbox<F> {
    /// A mailbox over `sender` whose FSM is held elsewhere for now (a poller, or nobody yet):
    /// messages queue up until [`BasicMailbox::release`] parks the FSM.
    pub fn new_notified(sender: Sender<F::Message>) -> BasicMailbox<F> {
        BasicMailbox {
            sender,
            state: Arc::new(FsmState {
                status: AtomicU8::new(NOTIFIED),
                parked: Mutex::new(None),
            }),
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.sender.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.sender.is_empty()
    }

    /// Whether the FSM stopped.
    pub fn is_closed(&self) -> bool {
        self.state.status.load(Ordering::Acquire) == CLOSED
    }

    fn take_if_idle(&self) -> Option<Box<F>> {
        if self
            .state
            .status
            .compare_exchange(IDLE, NOTIFIED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // IDLE is only ever set after parking, so the FSM is there.
            self.state.parked.lock().take()
        } else {
            None
        }
    }

    fn notify<S: FsmScheduler<Fsm = F>>(&self, scheduler: &S) {
        if let Some(fsm) = self.take_if_idle() {
            scheduler.schedule(fsm);
        }
    }

    /// Delivers `msg` whatever the mailbox's length (for messages that must not be lost).
    pub fn force_send<S: FsmScheduler<Fsm = F>>(
        &self,
        msg: F::Message,
        scheduler: &S,
    ) -> Result<(), SendError<F::Message>> {
        if self.is_closed() {
            return Err(SendError::Closed(msg));
        }
        self.sender
            .send(msg)
            .map_err(|e| SendError::Closed(e.into_inner()))?;
        self.notify(scheduler);
        Ok(())
    }

    /// Delivers `msg` unless `capacity` messages are already waiting.
    pub fn try_send<S: FsmScheduler<Fsm = F>>(
        &self,
        msg: F::Message,
        scheduler: &S,
        capacity: usize,
    ) -> Result<(), SendError<F::Message>> {
        if self.sender.len() >= capacity {
            return Err(SendError::Full(msg));
        }
        self.force_send(msg, scheduler)
    }

    /// Parks `fsm` after a round (see the module docs for the race this closes).
    pub(crate) fn release(&self, fsm: Box<F>) -> Released<F> {
        *self.state.parked.lock() = Some(fsm);
        if self
            .state
            .status
            .compare_exchange(NOTIFIED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return match self.state.parked.lock().take() {
                Some(fsm) => Released::Closed(fsm),
                // `close` took it and drops it.
                None => Released::Parked,
            };
        }
        if !self.sender.is_empty() {
            if let Some(fsm) = self.take_if_idle() {
                return Released::Reschedule(fsm);
            }
        }
        Released::Parked
    }

    /// Stops the FSM: later sends fail, and the parked FSM (if idle) is returned for dropping;
    /// a FSM held by a poller is dropped by that poller when it releases it.
    pub fn close(&self) -> Option<Box<F>> {
        self.state.status.store(CLOSED, Ordering::Release);
        self.state.parked.lock().take()
    }
}

/// An item on the pollers' queue.
pub(crate) enum FsmTypes<N, C> {
    Normal(Box<N>),
    Control(Box<C>),
    /// Wakes a poller so it notices the system is shutting down.
    Empty,
}

/// Queues normal FSMs.
pub struct NormalScheduler<N, C> {
    sender: Sender<FsmTypes<N, C>>,
}

impl<N, C> Clone for NormalScheduler<N, C> {
    fn clone(&self) -> Self {
        NormalScheduler {
            sender: self.sender.clone(),
        }
    }
}

impl<N: Fsm, C: Fsm> FsmScheduler for NormalScheduler<N, C> {
    type Fsm = N;
    fn schedule(&self, fsm: Box<N>) {
        // Fails only once the system is gone; the FSM is dropped then, answering what it holds.
        let _ = self.sender.send(FsmTypes::Normal(fsm));
    }
}

/// Queues the control FSM.
pub struct ControlScheduler<N, C> {
    sender: Sender<FsmTypes<N, C>>,
}

impl<N, C> Clone for ControlScheduler<N, C> {
    fn clone(&self) -> Self {
        ControlScheduler {
            sender: self.sender.clone(),
        }
    }
}

impl<N: Fsm, C: Fsm> FsmScheduler for ControlScheduler<N, C> {
    type Fsm = C;
    fn schedule(&self, fsm: Box<C>) {
        let _ = self.sender.send(FsmTypes::Control(fsm));
    }
}

/// Routes messages to normal FSMs by id and to the one control FSM.
pub struct BatchRouter<N: Fsm, C: Fsm> {
    normals: Arc<RwLock<HashMap<u64, BasicMailbox<N>>>>,
    control: BasicMailbox<C>,
    normal_scheduler: NormalScheduler<N, C>,
    control_scheduler: ControlScheduler<N, C>,
    closed: Arc<AtomicBool>,
}

impl<N: Fsm, C: Fsm> Clone for BatchRouter<N, C> {
    fn clone(&self) -> Self {
        BatchRouter {
            normals: self.normals.clone(),
            control: self.control.clone(),
            normal_scheduler: self.normal_scheduler.clone(),
            control_scheduler: self.control_scheduler.clone(),
            closed: self.closed.clone(),
        }
    }
}

impl<N: Fsm, C: Fsm> BatchRouter<N, C> {
    /// The mailbox of normal FSM `id`.
    pub fn mailbox(&self, id: u64) -> Option<BasicMailbox<N>> {
        self.normals.read().get(&id).cloned()
    }

    /// Whether normal FSM `id` is registered.
    pub fn contains(&self, id: u64) -> bool {
        self.normals.read().contains_key(&id)
    }

    /// Number of registered normal FSMs.
    pub fn len(&self) -> usize {
        self.normals.read().len()
    }

    /// Whether no normal FSM is registered.
    pub fn is_empty(&self) -> bool {
        self.normals.read().is_empty()
    }

    /// Ids of every registered normal FSM.
    pub fn ids(&self) -> Vec<u64> {
        self.normals.read().keys().copied().collect()
    }

    /// Whether the router was closed (the system is shutting down).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Registers `fsm` under `id` and parks it; `make_mailbox` gives it its mailbox first.
    /// An FSM already registered under `id` is closed (and dropped) first. Fails once the
    /// router is closed, returning the FSM.
    pub fn register(
        &self,
        id: u64,
        sender: Sender<N::Message>,
        set_mailbox: impl FnOnce(&mut N, BasicMailbox<N>),
        mut fsm: Box<N>,
    ) -> Result<(), Box<N>> {
        let mailbox = BasicMailbox::new_notified(sender);
        set_mailbox(&mut fsm, mailbox.clone());
        let old = {
            let mut normals = self.normals.write();
            if self.is_closed() {
                return Err(fsm);
            }
            normals.insert(id, mailbox.clone())
        };
        if let Some(old) = old {
            drop(old.close());
        }
        match mailbox.release(fsm) {
            Released::Reschedule(fsm) => self.normal_scheduler.schedule(fsm),
            Released::Closed(fsm) => drop(fsm),
            Released::Parked => {}
        }
        Ok(())
    }

    /// Removes normal FSM `id` from the routing table (its mailbox stays usable by whoever
    /// still holds it, until it is closed).
    pub fn unregister(&self, id: u64, mailbox: &BasicMailbox<N>) {
        let mut normals = self.normals.write();
        if normals
            .get(&id)
            .is_some_and(|mb| Arc::ptr_eq(&mb.state, &mailbox.state))
        {
            normals.remove(&id);
        }
    }

    /// Sends to normal FSM `id` (see [`BasicMailbox::force_send`]).
    pub fn force_send(&self, id: u64, msg: N::Message) -> Result<(), SendError<N::Message>> {
        match self.mailbox(id) {
            Some(mb) => mb.force_send(msg, &self.normal_scheduler),
            None => Err(SendError::Closed(msg)),
        }
    }

    /// Sends to normal FSM `id` unless its mailbox holds `capacity` messages.
    pub fn try_send(
        &self,
        id: u64,
        msg: N::Message,
        capacity: usize,
    ) -> Result<(), SendError<N::Message>> {
        match self.mailbox(id) {
            Some(mb) => mb.try_send(msg, &self.normal_scheduler, capacity),
            None => Err(SendError::Closed(msg)),
        }
    }

    /// Sends to the control FSM.
    pub fn send_control(&self, msg: C::Message) -> Result<(), SendError<C::Message>> {
        self.control.force_send(msg, &self.control_scheduler)
    }

    /// Sends `make()` to every normal FSM whose mailbox holds fewer than `capacity` messages.
    pub fn broadcast_normal(&self, capacity: usize, mut make: impl FnMut() -> N::Message) {
        let mailboxes: Vec<BasicMailbox<N>> = self.normals.read().values().cloned().collect();
        for mb in mailboxes {
            let _ = mb.try_send(make(), &self.normal_scheduler, capacity);
        }
    }

    /// Hands the control FSM to its mailbox (once, when the owner of the system starts it).
    pub fn start_control(&self, fsm: Box<C>) {
        match self.control.release(fsm) {
            Released::Reschedule(fsm) => self.control_scheduler.schedule(fsm),
            Released::Closed(fsm) => drop(fsm),
            Released::Parked => {}
        }
    }

    /// The control FSM's mailbox (to attach it to the control FSM).
    pub fn control_mailbox(&self) -> &BasicMailbox<C> {
        &self.control
    }

    /// Closes every mailbox: later sends fail, and idle FSMs are dropped here (answering
    /// whatever they hold); FSMs on pollers are dropped when released.
    pub fn close_all(&self) {
        let mailboxes: Vec<BasicMailbox<N>> = {
            let mut normals = self.normals.write();
            self.closed.store(true, Ordering::Release);
            normals.drain().map(|(_, mb)| mb).collect()
        };
        for mb in mailboxes {
            drop(mb.close());
        }
        drop(self.control.close());
    }
}

/// What a poller does with a batch; see the module docs.
pub trait PollHandler<N: Fsm, C: Fsm>: Send + 'static {
    /// Starts a round over `batch_size` FSMs.
    fn begin(&mut self, batch_size: usize);
    /// Handles the control FSM's messages.
    fn handle_control(&mut self, control: &mut C);
    /// Handles one normal FSM's messages.
    fn handle_normal(&mut self, normal: &mut N);
    /// Ends the round (the batched work: writes, sends).
    fn end(&mut self, normals: &mut [Box<N>]);
}

/// A system of FSMs and pollers; [`create_system`] builds it with its router.
pub struct BatchSystem<N: Fsm, C: Fsm> {
    name: String,
    receiver: Receiver<FsmTypes<N, C>>,
    sender: Sender<FsmTypes<N, C>>,
    pool_size: usize,
    max_batch_size: usize,
    shutdown: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Creates a batch system named `name` (thread names) with `pool_size` pollers handling up to
/// `max_batch_size` FSMs per round, and the router to reach its FSMs. The control FSM's mailbox
/// accepts messages right away; they are handled once the control FSM is started.
pub fn create_system<N: Fsm, C: Fsm>(
    name: &str,
    pool_size: usize,
    max_batch_size: usize,
    control_sender: Sender<C::Message>,
) -> (BatchRouter<N, C>, BatchSystem<N, C>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let router = BatchRouter {
        normals: Arc::new(RwLock::new(HashMap::new())),
        control: BasicMailbox::new_notified(control_sender),
        normal_scheduler: NormalScheduler { sender: tx.clone() },
        control_scheduler: ControlScheduler { sender: tx.clone() },
        closed: Arc::new(AtomicBool::new(false)),
    };
    let system = BatchSystem {
        name: name.to_string(),
        receiver: rx,
        sender: tx,
        pool_size: pool_size.max(1),
        max_batch_size: max_batch_size.max(1),
        shutdown: Arc::new(AtomicBool::new(false)),
        workers: vec![],
    };
    (router, system)
}

impl<N: Fsm, C: Fsm> BatchSystem<N, C> {
    /// Renames the pollers' threads (`<name>-<i>`); call before [`BatchSystem::spawn`].
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Spawns the pollers; `make_handler(i)` builds poller `i`'s handler.
    pub fn spawn<H: PollHandler<N, C>>(
        &mut self,
        mut make_handler: impl FnMut(usize) -> H,
    ) -> std::io::Result<()> {
        for i in 0..self.pool_size {
            let poller = Poller {
                receiver: self.receiver.clone(),
                sender: self.sender.clone(),
                handler: make_handler(i),
                max_batch_size: self.max_batch_size,
                shutdown: self.shutdown.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || poller.run())?;
            self.workers.push(handle);
        }
        Ok(())
    }

    /// Stops the pollers after their current round, joins them, and drops every FSM still
    /// queued. Close the router first so nothing new gets queued.
    pub fn shutdown(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        for _ in 0..self.workers.len() {
            let _ = self.sender.send(FsmTypes::Empty);
        }
        for h in self.workers.drain(..) {
            if h.join().is_err() {
                tracing::error!(system = %self.name, "a poller thread panicked");
            }
        }
        // Queued FSMs are dropped here, answering whatever they hold.
        while self.receiver.try_recv().is_ok() {}
    }
}

impl<N: Fsm, C: Fsm> Drop for BatchSystem<N, C> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Poller<N: Fsm, C: Fsm, H> {
    receiver: Receiver<FsmTypes<N, C>>,
    sender: Sender<FsmTypes<N, C>>,
    handler: H,
    max_batch_size: usize,
    shutdown: Arc<AtomicBool>,
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> Poller<N, C, H> {
    fn run(mut self) {
        let mut normals: Vec<Box<N>> = Vec::with_capacity(self.max_batch_size);
        let mut controls: Vec<Box<C>> = Vec::with_capacity(1);
        loop {
            // Block for the first FSM, then take whatever else is queued, up to the batch size.
            match self.receiver.recv() {
                Ok(item) => self.push(item, &mut normals, &mut controls),
                Err(_) => return,
            }
            while normals.len() + controls.len() < self.max_batch_size {
                match self.receiver.try_recv() {
                    Ok(item) => self.push(item, &mut normals, &mut controls),
                    Err(_) => break,
                }
            }
            if self.shutdown.load(Ordering::Acquire) {
                // Another poller may have taken the wake-up meant for the next one: pass it on.
                let _ = self.sender.send(FsmTypes::Empty);
                // The FSMs taken are dropped here; their mailboxes are closed by the router.
                return;
            }
            if normals.is_empty() && controls.is_empty() {
                continue;
            }
            self.handler.begin(normals.len() + controls.len());
            for c in controls.iter_mut() {
                self.handler.handle_control(c);
            }
            for n in normals.iter_mut() {
                self.handler.handle_normal(n);
            }
            self.handler.end(&mut normals);
            for n in normals.drain(..) {
                release(n, |f| {
                    let _ = self.sender.send(FsmTypes::Normal(f));
                });
            }
            for c in controls.drain(..) {
                release(c, |f| {
                    let _ = self.sender.send(FsmTypes::Control(f));
                });
            }
        }
    }

    fn push(&self, item: FsmTypes<N, C>, normals: &mut Vec<Box<N>>, controls: &mut Vec<Box<C>>) {
        match item {
            FsmTypes::Normal(n) => normals.push(n),
            FsmTypes::Control(c) => controls.push(c),
            FsmTypes::Empty => {}
        }
    }
}

fn release<F: Fsm>(fsm: Box<F>, reschedule: impl FnOnce(Box<F>)) {
    if fsm.is_stopped() {
        let mailbox = fsm.mailbox().clone();
        drop(mailbox.close());
        drop(fsm);
        return;
    }
    if fsm.has_pending_work() {
        // Stays notified: no sender will queue it while we hold it.
        reschedule(fsm);
        return;
    }
    let mailbox = fsm.mailbox().clone();
    match mailbox.release(fsm) {
        Released::Parked => {}
        Released::Reschedule(fsm) => reschedule(fsm),
        Released::Closed(fsm) => drop(fsm),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;

    struct Counter {
        rx: Receiver<u64>,
        mailbox: Option<BasicMailbox<Counter>>,
        sum: Arc<AtomicUsize>,
        /// Which poller thread holds it right now (0 = none); two at once is a bug.
        owner: Arc<AtomicUsize>,
        stop: bool,
    }

    impl Fsm for Counter {
        type Message = u64;
        fn is_stopped(&self) -> bool {
            self.stop
        }
        fn mailbox(&self) -> &BasicMailbox<Self> {
            self.mailbox.as_ref().unwrap()
        }
    }

    struct Ctl {
        mailbox: Option<BasicMailbox<Ctl>>,
        rx: Receiver<u64>,
        seen: Arc<AtomicUsize>,
    }

    impl Fsm for Ctl {
        type Message = u64;
        fn is_stopped(&self) -> bool {
            false
        }
        fn mailbox(&self) -> &BasicMailbox<Self> {
            self.mailbox.as_ref().unwrap()
        }
    }

    struct Handler {
        id: usize,
        rounds: Arc<AtomicUsize>,
        max_batch: Arc<AtomicUsize>,
    }

    impl PollHandler<Counter, Ctl> for Handler {
        fn begin(&mut self, n: usize) {
            self.rounds.fetch_add(1, Ordering::Relaxed);
            self.max_batch.fetch_max(n, Ordering::Relaxed);
        }
        fn handle_control(&mut self, c: &mut Ctl) {
            while let Ok(v) = c.rx.try_recv() {
                c.seen.fetch_add(v as usize, Ordering::Relaxed);
            }
        }
        fn handle_normal(&mut self, n: &mut Counter) {
            let prev = n.owner.swap(self.id + 1, Ordering::SeqCst);
            assert_eq!(prev, 0, "fsm owned by two pollers");
            while let Ok(v) = n.rx.try_recv() {
                if v == u64::MAX {
                    n.stop = true;
                } else {
                    n.sum.fetch_add(v as usize, Ordering::Relaxed);
                }
            }
        }
        fn end(&mut self, normals: &mut [Box<Counter>]) {
            for n in normals {
                n.owner.store(0, Ordering::SeqCst);
            }
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    type TestSystem = (
        BatchRouter<Counter, Ctl>,
        BatchSystem<Counter, Ctl>,
        Vec<Arc<AtomicUsize>>,
    );

    fn setup(
        pool: usize,
        fsms: u64,
        batch: usize,
        rounds: Arc<AtomicUsize>,
        max_batch: Arc<AtomicUsize>,
    ) -> TestSystem {
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (router, mut system) = create_system::<Counter, Ctl>("test", pool, batch, ctl_tx);
        let mut sums = vec![];
        for id in 0..fsms {
            let (tx, rx) = crossbeam_channel::unbounded();
            let sum = Arc::new(AtomicUsize::new(0));
            sums.push(sum.clone());
            let fsm = Box::new(Counter {
                rx,
                mailbox: None,
                sum,
                owner: Arc::new(AtomicUsize::new(0)),
                stop: false,
            });
            router
                .register(id, tx, |f, mb| f.mailbox = Some(mb), fsm)
                .unwrap_or_else(|_| panic!("register"));
        }
        let seen = Arc::new(AtomicUsize::new(0));
        router.start_control(Box::new(Ctl {
            mailbox: Some(router.control_mailbox().clone()),
            rx: ctl_rx,
            seen: seen.clone(),
        }));
        sums.push(seen);
        system
            .spawn(|id| Handler {
                id,
                rounds: rounds.clone(),
                max_batch: max_batch.clone(),
            })
            .unwrap();
        (router, system, sums)
    }

    #[test]
    fn every_message_is_handled_and_fsms_are_owned_once() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let max_batch = Arc::new(AtomicUsize::new(0));
        let (router, mut system, sums) = setup(3, 8, 4, rounds.clone(), max_batch.clone());
        // Four senders race the pollers' release of the same FSMs.
        std::thread::scope(|s| {
            for _ in 0..4 {
                let router = router.clone();
                s.spawn(move || {
                    for i in 0..2000u64 {
                        router.force_send(i % 8, 1).unwrap();
                    }
                });
            }
        });
        router.send_control(5).unwrap();
        wait_for("all messages", || {
            sums[..8]
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .sum::<usize>()
                == 8000
        });
        wait_for("control message", || sums[8].load(Ordering::Relaxed) == 5);
        assert!(max_batch.load(Ordering::Relaxed) <= 4);
        router.close_all();
        system.shutdown();
        assert!(router.force_send(0, 1).is_err());
    }

    #[test]
    fn stopped_fsm_closes_its_mailbox_and_capacity_is_enforced() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let max_batch = Arc::new(AtomicUsize::new(0));
        let (router, mut system, sums) = setup(1, 2, 8, rounds, max_batch);
        router.force_send(0, u64::MAX).unwrap();
        let mb = router.mailbox(0).unwrap();
        wait_for("fsm 0 to stop", || mb.is_closed());
        assert!(matches!(
            mb.force_send(1, &router.normal_scheduler),
            Err(SendError::Closed(1))
        ));
        router.force_send(1, 3).unwrap();
        wait_for("fsm 1", || sums[1].load(Ordering::Relaxed) == 3);

        // With pollers gone, messages pile up and the capacity check refuses droppable ones.
        router.close_all();
        system.shutdown();
        let (tx, _rx) = crossbeam_channel::unbounded::<u64>();
        let mb: BasicMailbox<Counter> = BasicMailbox::new_notified(tx);
        let (sched_tx, _sched_rx) = crossbeam_channel::unbounded();
        let sched = NormalScheduler::<Counter, Ctl> { sender: sched_tx };
        mb.try_send(1, &sched, 2).unwrap();
        mb.try_send(2, &sched, 2).unwrap();
        assert_eq!(mb.try_send(3, &sched, 2), Err(SendError::Full(3)));
        mb.force_send(4, &sched).unwrap();
        assert_eq!(mb.len(), 3);
    }
}
