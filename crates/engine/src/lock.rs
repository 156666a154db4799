//! The run lock, built from create-only objects so it works on a bucket where
//! nothing may be deleted or overwritten.
//!
//! A run writes `locks/{run_id}/{n}.json` (n = 0, then one per heartbeat), each
//! with an expiry, and `locks/{run_id}/released` when it ends. `run_id` starts
//! with the run's timestamp, so ids sort by start. A run holds the lock if no
//! earlier-starting run is still live: not released, not expired, and (on the
//! same host) its process still exists. Two runs racing both write first and
//! then look, so exactly one of them sees the other as earlier and backs off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imb_storage::{BackupStore, Error as StoreError, ObjectReadExt, Payload, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::layout::key;
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
    store: Arc<dyn BackupStore>,
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

fn write_info(handle: &Handle, store: &dyn BackupStore, info: &LockInfo, n: u32) -> Result<()> {
    let body = serde_json::to_vec(info).expect("lock info serialises");
    let k = key(format!("locks/{}/{n:06}.json", info.run_id));
    handle.block_on(store.put_opts(&k, Payload::from(body), PutOptions::default()))?;
    Ok(())
}

impl RunLock {
    /// Takes the lock for `run_id` or says who holds it.
    pub(crate) fn acquire(
        handle: &Handle,
        store: Arc<dyn BackupStore>,
        run_id: String,
        lease: Duration,
    ) -> Result<RunLock> {
        let pid = std::process::id();
        let me = LockInfo {
            run_id: run_id.clone(),
            host: host(),
            pid,
            pid_start: pid_start(pid),
            expires: humantime::format_rfc3339_seconds(SystemTime::now() + lease).to_string(),
        };
        write_info(handle, &*store, &me, 0)?;
        let lock = RunLock {
            heartbeat: spawn_heartbeat(handle, store.clone(), me.clone(), lease),
            store,
            run_id,
        };
        if let Some(holder) = lock.earlier_live_run(handle)? {
            lock.release(handle);
            return Err(Error::LockHeld { holder });
        }
        Ok(lock)
    }

    fn earlier_live_run(&self, handle: &Handle) -> Result<Option<String>> {
        let objects = handle.block_on(self.store.list_all("locks/"))?;
        // run_id -> (released, newest heartbeat key)
        let mut runs: BTreeMap<String, (bool, Option<String>)> = BTreeMap::new();
        for o in objects {
            let mut parts = o.key.as_str().splitn(3, '/').skip(1);
            let (Some(run), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let e = runs.entry(run.to_owned()).or_default();
            if name == "released" {
                e.0 = true;
            } else if name.ends_with(".json") && e.1.as_deref().is_none_or(|k| k < o.key.as_str()) {
                e.1 = Some(o.key.to_string());
            }
        }
        let now = SystemTime::now();
        let my_host = host();
        for (run, (released, newest)) in runs.range(..self.run_id.clone()) {
            let Some(newest) = newest else { continue };
            if *released {
                continue;
            }
            let info: LockInfo = match handle.block_on(self.store.get_bytes(&key(newest.as_str())))
            {
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
                tracing::info!(run = %run, "ignoring expired lock of an earlier run");
                continue;
            }
            if info.host == my_host && !process_alive(info.pid, info.pid_start) {
                tracing::info!(run = %run, pid = info.pid, "ignoring lock of a run whose process is gone");
                continue;
            }
            return Ok(Some(format!(
                "run {run} on host {} (pid {}), lock valid until {}",
                info.host, info.pid, info.expires
            )));
        }
        Ok(None)
    }

    /// Marks the lock released. Failure only delays the next run until expiry.
    pub(crate) fn release(self, handle: &Handle) {
        self.heartbeat.abort();
        let k = key(format!("locks/{}/released", self.run_id));
        if let Err(e) = handle.block_on(self.store.put_opts(
            &k,
            Payload::from(Vec::new()),
            PutOptions::default(),
        )) {
            tracing::warn!(error = %e, "could not release the lock; it will expire");
        }
    }
}

fn spawn_heartbeat(
    handle: &Handle,
    store: Arc<dyn BackupStore>,
    mut info: LockInfo,
    lease: Duration,
) -> tokio::task::JoinHandle<()> {
    handle.spawn(async move {
        let every = (lease / 3).max(Duration::from_secs(1));
        let mut n = 0u32;
        loop {
            tokio::time::sleep(every).await;
            n += 1;
            info.expires = humantime::format_rfc3339_seconds(SystemTime::now() + lease).to_string();
            let body = serde_json::to_vec(&info).expect("lock info serialises");
            let k = key(format!("locks/{}/{n:06}.json", info.run_id));
            if let Err(e) = store
                .put_opts(&k, Payload::from(body), PutOptions::default())
                .await
            {
                tracing::warn!(error = %e, "lock heartbeat failed");
            }
        }
    })
}
