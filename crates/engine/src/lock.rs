//! The run lock, built from create-only objects so it works on a bucket where
//! nothing may be deleted or overwritten.
//!
//! A run writes `locks/{run_id}/{n}.json` (n = 0, then one per heartbeat), each
//! with an expiry; when it ends it writes `locks/{run_id}/released` if it held the
//! lock, or `locks/{run_id}/withdrawn` if it backed off. `run_id` starts with the
//! run's start time, so ids sort by start. A run is *live* while it has neither
//! marker, is not expired and (on the same host) its process still exists.
//!
//! The protocol (proof in `docs/ARCHITECTURE.md`, model-checked in the tests):
//! create your lock object, then list. Proceed only when no other run is live at
//! all. If an earlier run is live, back off. If only later runs are live, list
//! again every [`POLL`]: proceed once every run seen live has withdrawn; back off
//! if one of them released (it held the lock while this run started), if an
//! earlier one appears, or when `wait` runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use imb_storage::{Error as StoreError, Key, Payload, PutOptions};
use serde::{Deserialize, Serialize};

use crate::sync_store::SyncStore;
use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockInfo {
    run_id: String,
    host: String,
    pid: u32,
    /// The process's start time in clock ticks since boot, to tell a live process
    /// from a reused pid.
    pid_start: Option<u64>,
    expires: String,
}

/// A held lock. Release it with [`RunLock::release`]; a dropped lock expires.
#[derive(Debug)]
pub(crate) struct RunLock {
    store: SyncStore,
    run_id: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may hold spaces).
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true; // No way to tell: assume alive and wait for the expiry.
    }
    match (pid_start(pid), start) {
        (None, _) => false,
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
    }
}

fn write_info(store: &SyncStore, info: &LockInfo, n: u32) -> Result<()> {
    let body = serde_json::to_vec(info).expect("lock info serialises");
    let k = imb_layout::lock_key(&info.run_id, n);
    store.put(&k, Payload::from(body), PutOptions::default())?;
    Ok(())
}

/// How often a run waiting for later runs to back off lists again.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// What a run does after one listing of the locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No other run is live: the lock is ours.
    Proceed,
    /// Another run may hold (or held) the lock meanwhile: this one is named.
    BackOff(String),
    /// Only later runs are live; they back off when they see us. List again.
    Wait,
}

/// What one listing showed of the *other* runs.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Live runs, id → a description for the user.
    pub(crate) live: BTreeMap<String, String>,
    /// Runs that released the lock (they held it).
    pub(crate) released: BTreeSet<String>,
}

/// The protocol's rule. `seen_live` holds every run seen live in earlier listings
/// of this attempt; `waited_out` is true once the wait has run out.
pub(crate) fn decide(
    me: &str,
    view: &View,
    seen_live: &BTreeSet<String>,
    waited_out: bool,
) -> Decision {
    if let Some(r) = seen_live.iter().find(|r| view.released.contains(*r)) {
        return Decision::BackOff(r.clone());
    }
    match view.live.keys().find(|o| o.as_str() != me) {
        None => Decision::Proceed,
        Some(first) if first.as_str() < me || waited_out => Decision::BackOff(first.clone()),
        Some(_) => Decision::Wait,
    }
}

impl RunLock {
    /// Takes the lock for `run_id` or says who holds it. Waits at most `wait` for
    /// later runs that started at the same time to back off.
    pub(crate) fn acquire(
        store: &SyncStore,
        run_id: String,
        lease: Duration,
        wait: Duration,
    ) -> Result<RunLock> {
        let pid = std::process::id();
        let me = LockInfo {
            run_id: run_id.clone(),
            host: host(),
            pid,
            pid_start: pid_start(pid),
            expires: humantime::format_rfc3339_seconds(SystemTime::now() + lease).to_string(),
        };
        write_info(store, &me, 0)?;
        let lock = RunLock {
            heartbeat: spawn_heartbeat(store, me.clone(), lease),
            store: store.clone(),
            run_id,
        };
        let deadline = std::time::Instant::now() + wait;
        let mut seen_live = BTreeSet::new();
        loop {
            let view = match lock.view() {
                Ok(v) => v,
                Err(e) => {
                    lock.end(WITHDRAWN);
                    return Err(e);
                }
            };
            let waited_out = std::time::Instant::now() >= deadline;
            match decide(&lock.run_id, &view, &seen_live, waited_out) {
                Decision::Proceed => return Ok(lock),
                Decision::BackOff(run) => {
                    lock.end(WITHDRAWN);
                    let holder = match view.live.get(&run) {
                        Some(shown) => shown.clone(),
                        None => format!("run {run}, which held the lock while this one started"),
                    };
                    return Err(Error::LockHeld { holder });
                }
                Decision::Wait => {
                    tracing::debug!(run = %lock.run_id, "later runs started with this one; waiting for them to back off");
                    seen_live.extend(view.live.into_keys());
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    /// The other runs as one listing shows them.
    fn view(&self) -> Result<View> {
        let objects = self.store.list_all(imb_layout::LOCKS_PREFIX)?;
        // run_id -> (ended, released, newest heartbeat key)
        let mut runs: BTreeMap<String, (bool, bool, Option<Key>)> = BTreeMap::new();
        for o in objects {
            let mut parts = o.key.as_str().splitn(3, '/').skip(1);
            let (Some(run), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let e = runs.entry(run.to_owned()).or_default();
            if name == RELEASED || name == WITHDRAWN {
                e.0 = true;
                e.1 |= name == RELEASED;
            } else if name.ends_with(".json") && e.2.as_ref().is_none_or(|k| k < &o.key) {
                e.2 = Some(o.key.clone());
            }
        }
        let now = SystemTime::now();
        let my_host = host();
        let mut view = View::default();
        for (run, (ended, released, newest)) in runs {
            if run == self.run_id {
                continue;
            }
            if released {
                view.released.insert(run.clone());
            }
            let Some(newest) = newest else { continue };
            if ended {
                continue;
            }
            let info: LockInfo = match self.store.get_bytes(&newest) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(lock = %newest, error = %e, "ignoring unreadable lock object");
                        continue;
                    }
                },
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let expired = humantime::parse_rfc3339(&info.expires).map_or(true, |t| t < now);
            if expired {
                tracing::info!(run = %run, "ignoring expired lock of another run");
                continue;
            }
            if info.host == my_host && !process_alive(info.pid, info.pid_start) {
                tracing::info!(run = %run, pid = info.pid, "ignoring lock of a run whose process is gone");
                continue;
            }
            let shown = format!(
                "run {run} on host {} (pid {}), lock valid until {}",
                info.host, info.pid, info.expires
            );
            view.live.insert(run, shown);
        }
        Ok(view)
    }

    /// Marks the lock released at the end of a run that held it. Failure only
    /// delays the next run until expiry.
    pub(crate) fn release(self) {
        self.end(RELEASED);
    }

    fn end(self, marker: &str) {
        self.heartbeat.abort();
        let k = imb_layout::lock_marker_key(&self.run_id, marker);
        if let Err(e) = self
            .store
            .put(&k, Payload::from(Vec::new()), PutOptions::default())
        {
            tracing::warn!(error = %e, "could not end the lock; it will expire");
        }
    }
}

/// The marker of a run that held the lock and ended.
const RELEASED: &str = "released";
/// The marker of a run that backed off.
const WITHDRAWN: &str = "withdrawn";

fn spawn_heartbeat(
    on: &SyncStore,
    mut info: LockInfo,
    lease: Duration,
) -> tokio::task::JoinHandle<()> {
    let store = on.shared();
    on.spawn(async move {
        let every = (lease / 3).max(Duration::from_secs(1));
        let mut n = 0u32;
        loop {
            tokio::time::sleep(every).await;
            n += 1;
            info.expires = humantime::format_rfc3339_seconds(SystemTime::now() + lease).to_string();
            let body = serde_json::to_vec(&info).expect("lock info serialises");
            let k = imb_layout::lock_key(&info.run_id, n);
            if let Err(e) = store
                .put_opts(&k, Payload::from(body), PutOptions::default())
                .await
            {
                tracing::warn!(error = %e, "lock heartbeat failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::{Decision, View, decide};

    #[derive(Debug, Clone, PartialEq)]
    enum Phase {
        Start,
        /// Listing, with the polls so far and the runs seen live.
        List(u32, BTreeSet<String>),
        Holding,
        Done,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Lock {
        Live,
        Released,
        Withdrawn,
    }

    /// A linearizable store of lock objects and runs stepping the protocol in an
    /// interleaving the schedule picks: create, list (again while waiting), then
    /// hold or withdraw; holders release when `holders_release`. Returns how many
    /// hold at the end; panics if two ever hold at once.
    fn model(ids: &[String], schedule: &[usize], max_polls: u32, holders_release: bool) -> usize {
        // Run index → its lock, once created.
        let mut store: BTreeMap<usize, Lock> = BTreeMap::new();
        let mut phase = vec![Phase::Start; ids.len()];
        let step = |p: usize, store: &mut BTreeMap<usize, Lock>, phase: &mut Vec<Phase>| {
            let id = ids[p].as_str();
            phase[p] = match phase[p].clone() {
                Phase::Start => {
                    store.insert(p, Lock::Live);
                    Phase::List(0, BTreeSet::new())
                }
                Phase::List(n, mut seen) => {
                    let mut view = View::default();
                    for (o, l) in store.iter().filter(|(o, _)| **o != p) {
                        match l {
                            Lock::Live => {
                                view.live.insert(ids[*o].clone(), String::new());
                            }
                            Lock::Released => {
                                view.released.insert(ids[*o].clone());
                            }
                            Lock::Withdrawn => {}
                        }
                    }
                    match decide(id, &view, &seen, n >= max_polls) {
                        Decision::Proceed => Phase::Holding,
                        Decision::BackOff(holder) => {
                            assert_ne!(holder, id);
                            store.insert(p, Lock::Withdrawn);
                            Phase::Done
                        }
                        Decision::Wait => {
                            seen.extend(view.live.into_keys());
                            Phase::List(n + 1, seen)
                        }
                    }
                }
                Phase::Holding if holders_release => {
                    store.insert(p, Lock::Released);
                    Phase::Done
                }
                other => other,
            };
            let holding = phase.iter().filter(|p| **p == Phase::Holding).count();
            assert!(holding <= 1, "two runs hold the lock: {phase:?}");
        };
        let pending = |phase: &Vec<Phase>| {
            (0..phase.len())
                .filter(|p| matches!(phase[*p], Phase::Start | Phase::List(..)))
                .collect::<Vec<_>>()
        };
        for &p in schedule {
            step(p % ids.len(), &mut store, &mut phase);
        }
        // Then everyone runs to the end, round robin.
        loop {
            let left = pending(&phase);
            if left.is_empty() {
                break;
            }
            for p in left {
                step(p, &mut store, &mut phase);
            }
        }
        phase.iter().filter(|p| **p == Phase::Holding).count()
    }

    fn ids() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set(0u16..1000, 2..6).prop_flat_map(|set| {
            let ids: Vec<String> = set.into_iter().map(|n| format!("{n:04}")).collect();
            Just(ids).prop_shuffle()
        })
    }

    proptest! {
        /// Mutual exclusion under every interleaving, however short the wait, also
        /// when holders finish and others start after them.
        #[test]
        fn never_two_holders(
            ids in ids(),
            schedule in proptest::collection::vec(0usize..6, 0..80),
            max_polls in 0u32..4,
            release in any::<bool>(),
        ) {
            model(&ids, &schedule, max_polls, release);
        }

        /// With a wait long enough for the others to back off, exactly one run
        /// holds the lock in the end, whatever the interleaving of the starts.
        #[test]
        fn exactly_one_holder_when_the_wait_is_long_enough(
            ids in ids(),
            schedule in proptest::collection::vec(0usize..6, 0..80),
        ) {
            prop_assert_eq!(model(&ids, &schedule, 1000, false), 1);
        }
    }

    #[test]
    fn the_rule() {
        let view = |live: &[&str], released: &[&str]| View {
            live: live
                .iter()
                .map(|s| (s.to_string(), String::new()))
                .collect(),
            released: released.iter().map(|s| s.to_string()).collect(),
        };
        let none = BTreeSet::new();
        assert_eq!(
            decide("b", &view(&[], &[]), &none, false),
            Decision::Proceed
        );
        assert_eq!(
            decide("b", &view(&["c", "a"], &[]), &none, false),
            Decision::BackOff("a".into())
        );
        assert_eq!(
            decide("b", &view(&["c", "d"], &[]), &none, false),
            Decision::Wait
        );
        assert_eq!(
            decide("b", &view(&["d", "c"], &[]), &none, true),
            Decision::BackOff("c".into())
        );
        // A run released before this one looked is history, not a holder...
        assert_eq!(
            decide("b", &view(&[], &["a", "c"]), &none, false),
            Decision::Proceed
        );
        // ... but one seen live that then released held the lock meanwhile.
        let seen: BTreeSet<String> = ["c".to_string()].into();
        assert_eq!(
            decide("b", &view(&[], &["c"]), &seen, false),
            Decision::BackOff("c".into())
        );
    }
}
