//! Unit tests: exactly-once delivery and bounded occupancy (as a property), deterministic
//! backpressure, and that dead workers neither wedge the producer nor go unreported.
//!
//! No test sleeps: ordering comes from channels and gates, so a pass means the behaviour,
//! not a lucky schedule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use proptest::prelude::*;

use super::*;

/// Runs `f` when dropped. A worker closure that owns one drops it as its thread ends.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Pushes `items` through a queue and checks every one is delivered exactly once and
/// the queue never holds more than it may, nor the system more than `capacity + workers`.
fn check_delivery(items: usize, capacity: usize, workers: usize) -> Result<(), TestCaseError> {
    let delivered = Arc::new(Mutex::new(Vec::with_capacity(items)));
    // Workers can only see the queue length through a sender, and a sender they keep would
    // hold the queue open forever; so they borrow this one, which the test clears before
    // finishing.
    let probe: Arc<Mutex<Option<Sender<usize>>>> = Arc::new(Mutex::new(None));
    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let over_capacity = Arc::new(AtomicUsize::new(0));

    let queue = WorkQueue::spawn(
        "prop",
        capacity,
        (0..workers).map(|_| {
            let delivered = Arc::clone(&delivered);
            let probe = Arc::clone(&probe);
            let done = Arc::clone(&done);
            let over_capacity = Arc::clone(&over_capacity);
            move |item: usize| {
                if let Some(sender) = probe.lock().unwrap().as_ref()
                    && sender.len() > capacity.max(1)
                {
                    over_capacity.fetch_add(1, Ordering::SeqCst);
                }
                delivered.lock().unwrap().push(item);
                done.fetch_add(1, Ordering::SeqCst);
            }
        }),
    );
    prop_assert_eq!(queue.capacity(), capacity.max(1));
    prop_assert_eq!(queue.workers(), workers);
    *probe.lock().unwrap() = Some(queue.sender().clone());

    for item in 0..items {
        started.fetch_add(1, Ordering::SeqCst);
        prop_assert!(queue.push(item).is_ok());
        prop_assert!(queue.len() <= queue.capacity());
        // Everything pushed and not yet finished is either queued or in a worker's hands
        // (one each): the memory bound the queue exists for.
        let in_flight = started.load(Ordering::SeqCst) - done.load(Ordering::SeqCst);
        prop_assert!(
            in_flight <= queue.capacity() + queue.workers(),
            "{} items in flight, capacity {}, workers {}",
            in_flight,
            queue.capacity(),
            queue.workers()
        );
    }
    *probe.lock().unwrap() = None;
    prop_assert!(queue.finish().is_ok());

    prop_assert_eq!(over_capacity.load(Ordering::SeqCst), 0);
    let mut delivered = std::mem::take(&mut *delivered.lock().unwrap());
    delivered.sort_unstable();
    prop_assert_eq!(delivered, (0..items).collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #[test]
    fn delivers_every_item_once_within_capacity(
        items in 0usize..2000,
        capacity in 1usize..16,
        workers in 1usize..6,
    ) {
        check_delivery(items, capacity, workers)?;
    }
}

#[test]
fn single_worker_capacity_one_delivers_in_order() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let queue = WorkQueue::spawn("one", 1, [move |i: u32| tx.send(i).unwrap()]);
    for i in 0..500 {
        queue.push(i).unwrap();
    }
    queue.finish().unwrap();
    // One worker and a FIFO channel: order is preserved.
    assert_eq!(rx.iter().collect::<Vec<_>>(), (0..500).collect::<Vec<_>>());
}

#[test]
fn backpressure_full_queue_rejects_try_push() {
    const WORKERS: usize = 2;
    const CAPACITY: usize = 3;
    // Workers report each item they take, then wait on the gate, which opens (every recv
    // returns) once `gate_tx` is dropped.
    let (taken_tx, taken_rx) = crossbeam_channel::unbounded::<u32>();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<u32>();
    let queue = WorkQueue::spawn(
        "gated",
        CAPACITY,
        (0..WORKERS).map(|_| {
            let (taken_tx, gate_rx, out_tx) = (taken_tx.clone(), gate_rx.clone(), out_tx.clone());
            move |item: u32| {
                taken_tx.send(item).unwrap();
                // Err means the gate is open; there is never a message.
                let _ = gate_rx.recv();
                out_tx.send(item).unwrap();
            }
        }),
    );
    drop((taken_tx, out_tx));

    // One item per worker, and wait until both are taken, so the queue is empty.
    for item in 0..WORKERS as u32 {
        queue.push(item).unwrap();
    }
    for _ in 0..WORKERS {
        taken_rx.recv().unwrap();
    }
    assert!(queue.is_empty());

    // Both workers are stuck at the gate, so exactly `CAPACITY` more items fit.
    let mut next = WORKERS as u32;
    for _ in 0..CAPACITY {
        queue.try_push(next).unwrap();
        next += 1;
    }
    assert_eq!(queue.len(), CAPACITY);
    let rejected = queue.try_push(next).unwrap_err();
    assert!(rejected.is_full(), "{rejected:?}");
    assert_eq!(rejected.to_string(), "work queue is full");
    assert_eq!(rejected.into_inner(), next);
    // Nothing was taken while the producer was rejected.
    assert!(taken_rx.try_recv().is_err());

    drop(gate_tx);
    // A blocking push now completes because the workers drain the queue.
    queue.push(next).unwrap();
    queue.finish().unwrap();
    let mut out: Vec<u32> = out_rx.iter().collect();
    out.sort_unstable();
    assert_eq!(out, (0..=next).collect::<Vec<_>>());
}

#[test]
fn capacity_zero_means_one() {
    let queue = WorkQueue::spawn("zero", 0, [|_: ()| {}]);
    assert_eq!(queue.capacity(), 1);
    queue.push(()).unwrap();
    queue.finish().unwrap();
}

#[test]
fn no_workers_means_closed() {
    let queue = WorkQueue::<u8>::spawn("none", 4, std::iter::empty::<fn(u8)>());
    assert_eq!(queue.workers(), 0);
    let err = queue.push(7).unwrap_err();
    assert_eq!(err.into_inner(), 7);
    assert!(matches!(queue.try_push(8), Err(TryPush::Closed(8))));
    queue.finish().unwrap();
}

/// Runs `f` on another thread and returns its result, failing the test if it takes more
/// than a minute. Only for tests whose bug would be a hang: the bound turns "CI stuck"
/// into a failure that says what hung; it plays no part in a passing run.
fn without_hanging<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what} hung: {e}"))
}

/// Items that make a worker panic; anything else is recorded.
fn panicking_workers(workers: usize, panic_on: fn(u32) -> bool) -> (WorkQueue<u32>, Receiver<u32>) {
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let queue = WorkQueue::spawn(
        "fragile",
        1,
        (0..workers).map(|_| {
            let out_tx = out_tx.clone();
            move |item: u32| {
                assert!(!panic_on(item), "worker failed on item {item}");
                out_tx.send(item).unwrap();
            }
        }),
    );
    (queue, out_rx)
}

#[test]
fn all_workers_panicking_closes_queue_and_finish_reports_it() {
    let (queue, out_rx) = panicking_workers(2, |_| true);
    // Each worker dies on its first item, so within capacity + workers + 1 pushes the
    // producer must see `Closed` instead of blocking forever.
    let (queue, closed) = without_hanging("push with every worker dead", move || {
        let closed = (0..100u32).find_map(|item| queue.push(item).err());
        (queue, closed)
    });
    let closed = closed.expect("push kept succeeding with every worker dead");
    assert_eq!(
        closed.to_string(),
        "work queue closed: every worker has exited"
    );
    assert!(matches!(queue.try_push(1000), Err(TryPush::Closed(1000))));

    let err = without_hanging("finish", move || queue.finish()).unwrap_err();
    assert_eq!(err.panicked, 2);
    assert_eq!(err.workers, 2);
    assert_eq!(err.queue, "fragile");
    let message = err.first_message.as_deref().unwrap();
    assert!(message.starts_with("worker failed on item "), "{message}");
    assert!(
        err.to_string()
            .starts_with("2 of 2 workers of queue \"fragile\" panicked (first: worker failed"),
        "{err}"
    );
    assert!(out_rx.try_recv().is_err());
}

#[test]
fn surviving_workers_keep_draining_after_a_panic() {
    let (queue, out_rx) = panicking_workers(3, |item| item == 0);
    for item in 0..200 {
        queue.push(item).unwrap();
    }
    let err = queue.finish().unwrap_err();
    assert_eq!((err.panicked, err.workers), (1, 3));
    let mut out: Vec<u32> = out_rx.iter().collect();
    out.sort_unstable();
    assert_eq!(out, (1..200).collect::<Vec<_>>());
}

#[test]
fn drop_without_finish_drains_and_joins() {
    let processed = Arc::new(AtomicUsize::new(0));
    let exited = Arc::new(AtomicUsize::new(0));
    let queue = WorkQueue::spawn(
        "dropped",
        8,
        (0..3).map(|_| {
            let processed = Arc::clone(&processed);
            let exited = Arc::clone(&exited);
            let guard = OnDrop(move || {
                exited.fetch_add(1, Ordering::SeqCst);
            });
            move |_: u32| {
                let _owned = &guard;
                processed.fetch_add(1, Ordering::SeqCst);
            }
        }),
    );
    for item in 0..100 {
        queue.push(item).unwrap();
    }
    drop(queue);
    // Drop returned only after every worker thread ended (dropping its closure) and
    // everything queued was processed.
    assert_eq!(exited.load(Ordering::SeqCst), 3);
    assert_eq!(processed.load(Ordering::SeqCst), 100);
}

#[test]
fn workers_are_named_after_the_queue() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let queue = WorkQueue::spawn(
        "hash",
        2,
        (0..3).map(|_| {
            let names = Arc::clone(&names);
            // Dropped on the worker thread as it exits, so it sees that thread's name.
            let guard = OnDrop(move || {
                let name = thread::current().name().map(str::to_owned);
                names.lock().unwrap().push(name);
            });
            move |_: ()| {
                let _owned = &guard;
            }
        }),
    );
    queue.finish().unwrap();
    let mut names = std::mem::take(&mut *names.lock().unwrap());
    names.sort();
    let want = ["hash-0", "hash-1", "hash-2"].map(|n| Some(n.to_owned()));
    assert_eq!(names, want);
}

#[test]
fn select_on_sender_and_debug() {
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let queue = WorkQueue::spawn("select", 2, [move |i: u8| out_tx.send(i).unwrap()]);
    assert_eq!(
        format!("{queue:?}"),
        "WorkQueue { name: \"select\", capacity: 2, len: 0, workers: 1 }"
    );
    crossbeam_channel::select! {
        send(queue.sender(), 5) -> res => res.unwrap(),
    }
    queue.finish().unwrap();
    assert_eq!(out_rx.recv().unwrap(), 5);
}
