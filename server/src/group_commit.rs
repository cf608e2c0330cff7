//! SQLite group commit for encounter uploads: the uploads that arrive while one is being
//! written are written together, with their audit rows, in the next transaction.
//!
//! SQLite runs one writer at a time, and a commit's cost grows with the pages it dirties: a
//! row touches a leaf of every index (id, plate, time, cell, plate n-grams), so 500 rows per
//! transaction wrote about 10,500 rows/s and 1,500 about 16,000 (same schema, same machine).
//! Each upload queues a job and then waits for the writer; whoever gets the writer takes
//! every queued job (up to [`MAX_GROUP_ROWS`] rows) and writes them in one transaction,
//! answering each job, so an upload usually finds its rows already written by the time its
//! turn comes. The write runs in its own task: an upload whose client went away must not
//! cancel a transaction that holds other uploads' rows.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{ConnectOptions, Connection as _};
use tokio::sync::oneshot;

use crate::audit::{self, AuditEvent, AuditWriter};
use crate::bulk;
use crate::ingest::{Claim, Encounter};

/// Most rows one group transaction takes (a single larger upload still goes alone).
pub const MAX_GROUP_ROWS: usize = 5_000;

/// Pragmas of the SQLite ingest connection only: statement journals (a multi-row insert into
/// a table with foreign keys needs one) in memory instead of a temporary file, and a 64 MiB page
/// cache for the indexes being written.
const INGEST_PRAGMAS: [(&str, &str); 2] = [("temp_store", "memory"), ("cache_size", "-65536")];

/// An upload's audit event, made from which of its rows were new.
pub type AuditFor = Box<dyn Fn(&[bool]) -> AuditEvent + Send + Sync>;

type Answer = Result<Vec<bool>, sqlx::Error>;

struct Job {
    rows: Vec<Encounter>,
    received_at_ms: i64,
    audit: Option<AuditFor>,
    done: oneshot::Sender<Answer>,
}

/// The queue of uploads and the connection they are written on (opened on first use, with
/// its page cache kept warm between groups).
#[derive(Clone, Default)]
pub(crate) struct GroupCommit {
    queue: Arc<Mutex<VecDeque<Job>>>,
    conn: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::Protocol("the encounter writer stopped before writing this upload".into())
}

impl GroupCommit {
    /// Stores `rows` (first occurrence of an id counts; an id stored before, or earlier in the
    /// same group, is not new) and appends `audit`'s event in the same transaction; for each
    /// row, whether it was new.
    pub(crate) async fn write(
        &self,
        pool: &SqlitePool,
        audit_lock: &Arc<AuditWriter>,
        rows: Vec<Encounter>,
        received_at_ms: i64,
        audit: Option<AuditFor>,
    ) -> Answer {
        let (done, mut answer) = oneshot::channel();
        self.lock_queue().push_back(Job {
            rows,
            received_at_ms,
            audit,
            done,
        });
        loop {
            let conn = self.conn.clone().lock_owned().await;
            match answer.try_recv() {
                Ok(a) => return a,
                Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // Ours is still queued (FIFO): lead a group, which takes it unless the jobs ahead
            // fill the group, in which case the next round does.
            let jobs = self.take_group();
            let (pool, audit_lock) = (pool.clone(), audit_lock.clone());
            tokio::spawn(async move {
                let mut conn = conn;
                write_group(&mut conn, &pool, &audit_lock, jobs).await;
            })
            .await
            .map_err(|_| stopped())?;
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The jobs at the head of the queue, at least one, up to [`MAX_GROUP_ROWS`] rows.
    fn take_group(&self) -> Vec<Job> {
        let mut q = self.lock_queue();
        let mut jobs = Vec::new();
        let mut rows = 0;
        while let Some(next) = q.front() {
            if !jobs.is_empty() && rows + next.rows.len() > MAX_GROUP_ROWS {
                break;
            }
            rows += next.rows.len();
            jobs.extend(q.pop_front());
        }
        jobs
    }
}

/// Writes `jobs` in one transaction and answers each. If that fails, the connection is
/// dropped (closing it rolls back) and each job is tried alone, so one upload's failure is
/// not another's.
async fn write_group(
    slot: &mut Option<SqliteConnection>,
    pool: &SqlitePool,
    audit_lock: &AuditWriter,
    jobs: Vec<Job>,
) {
    let result = write_jobs(slot, pool, audit_lock, &jobs).await;
    match result {
        Ok(answers) => {
            for (job, a) in jobs.into_iter().zip(answers) {
                let _ = job.done.send(Ok(a));
            }
        }
        Err(e) => {
            *slot = None;
            let mut jobs = jobs.into_iter();
            if jobs.len() == 1 {
                if let Some(job) = jobs.next() {
                    let _ = job.done.send(Err(e));
                }
                return;
            }
            for job in jobs {
                let alone = std::slice::from_ref(&job);
                let a = write_jobs(slot, pool, audit_lock, alone).await;
                if a.is_err() {
                    *slot = None;
                }
                let _ = job.done.send(a.map(|mut v| v.pop().unwrap_or_default()));
            }
        }
    }
}

async fn write_jobs(
    slot: &mut Option<SqliteConnection>,
    pool: &SqlitePool,
    audit_lock: &AuditWriter,
    jobs: &[Job],
) -> Result<Vec<Vec<bool>>, sqlx::Error> {
    if slot.is_none() {
        let mut opts = (*pool.connect_options()).clone();
        for (k, v) in INGEST_PRAGMAS {
            opts = opts.pragma(k, v);
        }
        *slot = Some(opts.connect().await?);
    }
    let Some(conn) = slot.as_mut() else {
        return Err(stopped());
    };
    // Audit appends of this process queue here, so this transaction reads the chain's head
    // last written.
    let _audit = audit_lock.lock().await;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let claim = Claim::of(&job.rows, &mut claimed);
        let new_ids = if claim.rows.is_empty() {
            Vec::new()
        } else {
            bulk::sqlite_insert(&mut tx, &claim.rows, job.received_at_ms).await?
        };
        answers.push(claim.stored(&new_ids));
    }
    let events: Vec<AuditEvent> = jobs
        .iter()
        .zip(&answers)
        .filter_map(|(j, a)| j.audit.as_ref().map(|f| f(a)))
        .collect();
    audit::append_sqlite(&mut tx, audit_lock, &events, crate::now_ms()).await?;
    tx.commit().await?;
    Ok(answers)
}
