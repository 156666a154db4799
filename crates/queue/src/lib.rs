//! A bounded producer/consumer work queue: one producer pushes items, N worker threads
//! consume them.
//!
//! The backup's directory walk produces far more work (files to hash and upload) than the
//! workers can finish, and a library may hold millions of files. The key design decision is
//! that the queue is **bounded** and the producer **blocks** when it is full: that is the
//! backpressure that keeps memory at `capacity + workers` items however many flow through,
//! instead of the walk racing ahead and buffering the whole library. Capacity is therefore
//! an explicit argument to [`WorkQueue::spawn`], not a default.
//!
//! The second decision is that a dead worker can never wedge the producer. Each worker owns
//! a receiving end of the channel; when every worker has exited (finished or panicked) the
//! channel disconnects, and [`WorkQueue::push`] returns [`Closed`] with the item instead of
//! blocking forever. [`WorkQueue::finish`] closes the queue, lets the workers drain what is
//! queued, joins them, and reports panics as [`WorkerPanicked`].
//!
//! The shape follows rustic_core's packer `Actor`: a `crossbeam_channel::bounded` channel
//! into worker threads. Workers are plain OS threads because their work (reading and
//! hashing files, blocking uploads) is blocking.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let total = Arc::new(AtomicU64::new(0));
//! let workers = (0..2).map(|_| {
//!     let total = Arc::clone(&total);
//!     move |n: u64| {
//!         total.fetch_add(n, Ordering::Relaxed);
//!     }
//! });
//! let queue = imb_queue::WorkQueue::spawn("sum", 4, workers);
//! for n in 1..=100 {
//!     // Blocks while four items are waiting: the producer can't run ahead.
//!     queue.push(n).unwrap();
//! }
//! queue.finish().unwrap();
//! assert_eq!(total.load(Ordering::Relaxed), 5050);
//! ```

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Sender, TrySendError};

#[cfg(test)]
mod tests;

/// A bounded queue feeding a fixed set of worker threads.
///
/// Created by [`WorkQueue::spawn`]; closed by [`WorkQueue::finish`] or by dropping it. Both
/// let the workers process what is already queued and then join them.
pub struct WorkQueue<T> {
    // `None` only once `finish` or `drop` has closed the queue; every `&self` method runs
    // before that, so it can rely on the sender being present.
    sender: Option<Sender<T>>,
    handles: Vec<JoinHandle<()>>,
    capacity: usize,
    name: String,
}

impl<T: Send + 'static> WorkQueue<T> {
    /// Starts one OS thread per element of `workers`, named `"{name}-{i}"`, each calling its
    /// closure on every item it takes from a queue holding at most `capacity` items.
    ///
    /// A `capacity` of 0 is treated as 1: a rendezvous channel would make the producer wait
    /// for a worker on every item, which is never what a work queue wants.
    ///
    /// With no workers at all, nothing can take items, so every push returns [`Closed`].
    ///
    /// # Panics
    ///
    /// Panics if the operating system refuses to start a thread, as [`std::thread::spawn`]
    /// does. Workers already started then see the queue closed and exit.
    pub fn spawn<W>(name: &str, capacity: usize, workers: impl IntoIterator<Item = W>) -> Self
    where
        W: FnMut(T) + Send + 'static,
    {
        let capacity = capacity.max(1);
        let (sender, receiver) = crossbeam_channel::bounded::<T>(capacity);
        let handles = workers
            .into_iter()
            .enumerate()
            .map(|(i, mut work)| {
                let receiver = receiver.clone();
                thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        // Ends when the queue is closed and drained. If `work` panics, the
                        // unwind drops this receiver, so once every worker is gone the
                        // channel disconnects and a blocked producer wakes up.
                        for item in receiver {
                            work(item);
                        }
                    })
                    .expect("failed to spawn work queue thread")
            })
            .collect();
        // Only workers may hold receivers: otherwise the channel would never disconnect when
        // they all die, and `push` could block forever.
        drop(receiver);
        Self {
            sender: Some(sender),
            handles,
            capacity,
            name: name.to_owned(),
        }
    }

    /// Queues `item`, blocking while the queue is full.
    ///
    /// # Errors
    ///
    /// Returns [`Closed`] with the item if every worker has exited (for example, panicked),
    /// so the item can never be processed.
    pub fn push(&self, item: T) -> Result<(), Closed<T>> {
        self.live_sender()
            .send(item)
            .map_err(|crossbeam_channel::SendError(item)| Closed(item))
    }

    /// Queues `item` if there is room, without blocking.
    ///
    /// # Errors
    ///
    /// Returns [`TryPush::Full`] with the item if the queue holds `capacity` items, and
    /// [`TryPush::Closed`] with the item if every worker has exited.
    pub fn try_push(&self, item: T) -> Result<(), TryPush<T>> {
        self.live_sender().try_send(item).map_err(|e| match e {
            TrySendError::Full(item) => TryPush::Full(item),
            TrySendError::Disconnected(item) => TryPush::Closed(item),
        })
    }
}

impl<T> WorkQueue<T> {
    /// The sending end of the queue, for a coordinator that must wait on pushing and on
    /// other channels at once with `crossbeam_channel::select!`.
    ///
    /// Don't keep a clone of it: a clone holds the queue open, so [`finish`](Self::finish)
    /// and drop would wait for the workers forever.
    pub fn sender(&self) -> &Sender<T> {
        self.live_sender()
    }

    /// The most items the queue holds at once (at least 1).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of items queued and not yet taken by a worker.
    pub fn len(&self) -> usize {
        self.live_sender().len()
    }

    /// Whether no items are waiting for a worker.
    pub fn is_empty(&self) -> bool {
        self.live_sender().is_empty()
    }

    /// The number of worker threads started, including any that have since exited.
    pub fn workers(&self) -> usize {
        self.handles.len()
    }

    /// Closes the queue, lets the workers process everything already queued, and waits
    /// for them to exit.
    ///
    /// # Errors
    ///
    /// Returns [`WorkerPanicked`] if any worker panicked, saying how many did. Items that
    /// were queued when the last worker died are dropped unprocessed.
    pub fn finish(mut self) -> Result<(), WorkerPanicked> {
        let results = self.close_and_join();
        let workers = results.len();
        let mut panics = results.into_iter().filter_map(Result::err);
        let Some(first) = panics.next() else {
            return Ok(());
        };
        Err(WorkerPanicked {
            queue: self.name.clone(),
            panicked: 1 + panics.count(),
            workers,
            first_message: panic_message(first.as_ref()),
        })
    }

    fn live_sender(&self) -> &Sender<T> {
        self.sender
            .as_ref()
            .expect("the sender is only taken by finish or drop, which consume the queue")
    }

    /// Drops the sender, so workers see the end of the queue once it drains, and joins them.
    fn close_and_join(&mut self) -> Vec<thread::Result<()>> {
        drop(self.sender.take());
        self.handles.drain(..).map(JoinHandle::join).collect()
    }
}

impl<T> Drop for WorkQueue<T> {
    /// Closes the queue and joins the workers, like [`WorkQueue::finish`], so no thread
    /// outlives the queue. Worker panics are ignored here: the panic hook has already
    /// reported them, and panicking in drop could abort the process.
    fn drop(&mut self) {
        let _ = self.close_and_join();
    }
}

impl<T> fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("len", &self.sender.as_ref().map_or(0, Sender::len))
            .field("workers", &self.handles.len())
            .finish()
    }
}

/// The text of a panic payload, when it is a string (as for `panic!` with a message).
fn panic_message(payload: &(dyn Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// [`WorkQueue::push`] failed because every worker has exited; holds the item back.
pub struct Closed<T>(pub T);

impl<T> Closed<T> {
    /// The item that could not be queued.
    pub fn into_inner(self) -> T {
        self.0
    }
}

// Written by hand so `T` needn't be `Debug`, as for `std::sync::mpsc::SendError`.
impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("work queue closed: every worker has exited")
    }
}

impl<T> Error for Closed<T> {}

/// Why [`WorkQueue::try_push`] did not queue an item; holds the item back.
pub enum TryPush<T> {
    /// The queue holds `capacity` items; try again once a worker has taken one.
    Full(T),
    /// Every worker has exited, so the item can never be processed.
    Closed(T),
}

impl<T> TryPush<T> {
    /// The item that could not be queued.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }

    /// Whether the queue was full (rather than closed).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

impl<T> fmt::Debug for TryPush<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPush<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("work queue is full"),
            Self::Closed(_) => f.write_str("work queue closed: every worker has exited"),
        }
    }
}

impl<T> Error for TryPush<T> {}

/// [`WorkQueue::finish`] found that one or more workers panicked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerPanicked {
    /// The name the queue was spawned with.
    pub queue: String,
    /// How many workers panicked.
    pub panicked: usize,
    /// How many workers the queue had.
    pub workers: usize,
    /// The message of the first panic found, if it carried a string.
    pub first_message: Option<String>,
}

impl fmt::Display for WorkerPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} workers of queue {:?} panicked",
            self.panicked, self.workers, self.queue
        )?;
        if let Some(message) = &self.first_message {
            write!(f, " (first: {message})")?;
        }
        Ok(())
    }
}

impl Error for WorkerPanicked {}
