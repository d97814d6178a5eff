//! The single SQLite database (`pasarela.db` in the state directory): schema, migrations and
//! every read and write of messages.
//!
//! rusqlite is synchronous, so connections live on dedicated threads and the async side talks
//! to them through bounded channels; the runtime is never blocked. One writer thread owns the
//! only write connection and commits with *group commit*: it takes every job waiting in its
//! queue, runs each in its own savepoint (a failing job rolls back alone) and commits once.
//! A sync thread then syncs the WAL to disk, once for every commit waiting, and only then
//! answers: an answer means the change is durable (it survives a power cut), while the
//! writer goes on with the next group instead of waiting for the disk. The one exception is
//! asked for by name ([`Store::write_deferred_sync`]: the dispatcher's claims, the campaign
//! feeder's rounds, the rules' decisions): changes a power cut may undo without harm are
//! answered once committed and reach the disk with the next sync. A commit holding durable
//! jobs also takes in the jobs that arrived while it was being prepared. Reader threads serve
//! queries from their own connections, so history searches never wait behind writes.
//!
//! [`retention`] prunes old finished messages in the background; [`backup`] makes consistent
//! copies and restores one, guarded by a lock on the state directory that every handle holds.

pub mod backup;
pub mod campaigns;
pub mod directory;
pub mod messages;
pub mod outages;
pub mod overview;
pub mod retention;
mod schema;
pub mod sink;
pub mod sms;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

pub use messages::{
    Channel, Direction, ListFilter, Message, MessageId, NewInbound, NewOutbound, Outcome, Priority,
    State, StatusUpdate,
};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "pasarela.db";

/// Most jobs folded into one commit: bounds the latency one commit adds to the first job.
const MAX_GROUP: usize = 1024;
/// Queued jobs before callers wait (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 4096;
const READERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("message {0} not found")]
    NotFound(MessageId),
    /// The change does not apply to the message's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the database is closed")]
    Closed,
    #[error(
        "the database {path} has schema version {found}, newer than this pasarela knows ({known}); \
         install the newer pasarela again or restore a backup"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub use crate::model::now_ms;

/// Sets (`Some`) or clears (`None`) one `meta` value inside the caller's transaction.
pub fn meta_put(c: &Connection, key: &str, value: Option<i64>) -> Result<(), StoreError> {
    match value {
        Some(v) => c
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(rusqlite::params![key, v])?,
        None => c
            .prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute([key])?,
    };
    Ok(())
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// One write: the change, and whether its answer must wait until the commit is on disk.
struct WriteJob {
    run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
    synced: bool,
}

enum WriteMsg {
    Job(WriteJob),
    Close(oneshot::Sender<()>),
    /// Hand the connection's spare cache memory back (see [`Store::release_memory`]).
    Release(oneshot::Sender<()>),
}

/// Handle to the database; cheap to clone. Every method is cancel safe in the sense that a
/// dropped future never leaves a half-applied change: a job runs whole or not at all.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<WriteMsg>,
    readers: Arc<Vec<ReaderSlot>>,
    path: Arc<PathBuf>,
    /// Signalled after a new inbound message is committed (the rules wait on it).
    inbound: Arc<tokio::sync::Notify>,
    /// Signalled after new messages (inbound or queued) are committed (the search indexer
    /// waits on it).
    added: Arc<tokio::sync::Notify>,
    /// Writes that changed rows since open (counted once their commit ended): while it stays
    /// the same, nothing in the database changed.
    changes: Arc<std::sync::atomic::AtomicU64>,
    /// Write jobs handed to the writer since open (for tests and figures: idle loops must not
    /// write).
    writes: Arc<std::sync::atomic::AtomicU64>,
    /// Times the WAL was synced to disk since open (for tests).
    syncs: Arc<std::sync::atomic::AtomicU64>,
    /// Read jobs handed to the readers since open (with `writes`: did anything go to the
    /// database since a given moment).
    reads: Arc<std::sync::atomic::AtomicU64>,
    /// Campaign sends step aside while a customer's message is answered (see
    /// [`Store::bulk_held`]).
    bulk_hold: Arc<BulkHold>,
    /// Shared lock on the state directory while any handle lives: `pasarela restore` waits
    /// for none.
    _lock: Arc<backup::DbLock>,
    /// The clock the store stamps rows with (Unix ms): the system's, or the one given to
    /// [`Store::with_clock`].
    clock: Clock,
}

/// Longest that campaign messages step aside for one inbound message ([`Store::bulk_held`]):
/// a reply that takes longer (its route down or busy) lets them go on.
pub const BULK_HOLD: Duration = Duration::from_millis(50);

/// See [`Store::bulk_held`]: until when, in microseconds since [`BulkHold::epoch`] (0: no
/// hold).
#[derive(Default)]
struct BulkHold {
    until_us: std::sync::atomic::AtomicU64,
}

impl BulkHold {
    fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }

    fn now_us() -> u64 {
        // At least 1: 0 means no hold.
        (Self::epoch().elapsed().as_micros() as u64).max(1)
    }

    fn hold(&self, length: Duration) {
        let until = Self::now_us() + length.as_micros() as u64;
        self.until_us
            .fetch_max(until, std::sync::atomic::Ordering::AcqRel);
    }

    fn release(&self) {
        self.until_us.store(0, std::sync::atomic::Ordering::Release);
    }

    fn left(&self) -> Option<Duration> {
        let until = self.until_us.load(std::sync::atomic::Ordering::Acquire);
        let now = Self::now_us();
        (until > now).then(|| Duration::from_micros(until - now))
    }
}

/// See [`Store::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    changes: u64,
    wal: Option<(u64, Option<std::time::SystemTime>)>,
}

/// What a background loop's last look at the database rested on, so an idle loop's periodic
/// look ("anything due?") is skipped while its answer cannot have changed: the database as it
/// was just before the look ([`Snapshot`]), what else the answer depended on (`K`: settings in
/// force, free slots), and the soonest due time the look found. The look is needed again once
/// any of them moved or that time has come. An idle gateway's loops then wake without waking
/// a database thread.
#[derive(Debug)]
pub struct LastLook<K> {
    seen: Option<(Snapshot, K, Option<i64>)>,
}

impl<K> Default for LastLook<K> {
    fn default() -> Self {
        Self { seen: None }
    }
}

impl<K: PartialEq> LastLook<K> {
    /// Whether a look taken now (`snapshot` just taken, `key` as it is now, `now` Unix ms on
    /// the clock the due times are on) could answer differently from the last one.
    pub fn needed(&self, snapshot: &Snapshot, key: &K, now: i64) -> bool {
        match &self.seen {
            None => true,
            Some((s, k, due)) => s != snapshot || k != key || due.is_some_and(|d| d <= now),
        }
    }

    /// Records a look made after `snapshot` was taken, with `key`, that found `due` as the
    /// soonest due time (`None`: nothing due at any time).
    pub fn record(&mut self, snapshot: Snapshot, key: K, due: Option<i64>) {
        self.seen = Some((snapshot, key, due));
    }

    /// The next look is made whatever changed.
    pub fn forget(&mut self) {
        self.seen = None;
    }

    /// The soonest due time the last look found.
    pub fn due(&self) -> Option<i64> {
        self.seen.as_ref().and_then(|(_, _, d)| *d)
    }
}

/// A source of Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl Store {
    /// Opens (creating if needed) the database in `state_dir`, runs migrations and starts the
    /// connection threads.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Open {
            path: state_dir.to_path_buf(),
            source: rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())),
        })?;
        let lock = backup::lock_state_dir(state_dir, false)?
            .ok_or_else(|| StoreError::Conflict("the state directory is locked".into()))?;
        let path = state_dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        // Switching to WAL needs a moment of exclusive access; another process opening the same
        // database at the same time gets SQLITE_BUSY without waiting, so try a few times.
        let mut tries = 0;
        while let Err(e) = configure_writer(&conn) {
            tries += 1;
            if tries >= 50 {
                return Err(open_err(e));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        migrate(&conn, &path)?;
        count_state_changes(&conn).map_err(open_err)?;

        let (wtx, wrx) = mpsc::channel(QUEUE_DEPTH);
        let syncs: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let bulk_hold: Arc<BulkHold> = Arc::default();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let wal = wal_path(&path);
                let syncs = syncs.clone();
                let hold = bulk_hold.clone();
                move || writer_loop(conn, wrx, wal, syncs, hold)
            })
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;

        let mut readers = Vec::with_capacity(READERS);
        for i in 0..READERS {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(open_err)?;
            messages::register_functions(&conn).map_err(open_err)?;
            let (tx, rx) = mpsc::channel::<ReadJob>(QUEUE_DEPTH / READERS);
            std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || reader_loop(conn, rx))
                .map_err(|e| StoreError::Commit(format!("cannot start a reader thread: {e}")))?;
            readers.push(ReaderSlot {
                jobs: tx,
                pending: Arc::default(),
            });
        }
        Ok(Store {
            writer: wtx,
            readers: Arc::new(readers),
            path: Arc::new(path),
            inbound: Arc::new(tokio::sync::Notify::new()),
            added: Arc::new(tokio::sync::Notify::new()),
            changes: Arc::default(),
            writes: Arc::default(),
            syncs,
            reads: Arc::default(),
            bulk_hold,
            _lock: Arc::new(lock),
            clock: Arc::new(now_ms),
        })
    }

    /// The same database stamped by `clock` instead of the system's: a test drives the store,
    /// the dispatcher and the rate limits on one clock (e.g. tokio's paused time) this way.
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    /// Now, on the store's clock (Unix ms).
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The saved email template of document type `kind`: subject, text, HTML.
    pub async fn email_template(
        &self,
        kind: String,
    ) -> Result<Option<(String, String, Option<String>)>, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached(
                    "SELECT subject, text, html FROM email_templates WHERE kind = ?1",
                )?
                .query_row([&kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?,
            )
        })
        .await
    }

    /// Saves (replaces) the email template of document type `kind`.
    pub async fn set_email_template(
        &self,
        kind: String,
        subject: String,
        text: String,
        html: Option<String>,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO email_templates (kind, subject, text, html, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(rusqlite::params![kind, subject, text, html, now])?;
            Ok(())
        })
        .await
    }

    /// Drops the saved email template of `kind` (the built-in one applies again).
    pub async fn delete_email_template(&self, kind: String) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute("DELETE FROM email_templates WHERE kind = ?1", [&kind])?;
            Ok(())
        })
        .await
    }

    /// The server's final answer to message `id` (an accepted mail's `250 …`), if kept.
    pub async fn answer(&self, id: MessageId) -> Result<Option<String>, StoreError> {
        self.read(move |c| messages::answer(c, id)).await
    }

    /// When route `transport`'s messages accepted since `since` (Unix ms) were sent, newest
    /// first, at most `limit`: a restarted dispatcher refills its rate windows from them.
    pub async fn sent_since(
        &self,
        transport: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        let transport = transport.to_string();
        self.read(move |c| messages::sent_since(c, &transport, since, limit))
            .await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write jobs requested through this store (all clones) since it was opened.
    pub fn write_count(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs (reads and writes) handed to the database threads since open (all clones).
    pub fn job_count(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed) + self.write_count()
    }

    /// The database as it is now, to compare a later look with: an equal snapshot means
    /// nothing was committed in between, by this process (its change count) or by another
    /// (every commit appends to the WAL file or rewrites it from its start, changing its
    /// size or its modification time). Costs a `stat`, no database thread.
    pub fn snapshot(&self) -> Snapshot {
        let wal = std::fs::metadata(wal_path(&self.path))
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        Snapshot {
            changes: self.change_count(),
            wal,
        }
    }

    /// Times the writer's commits were synced to disk since open (all clones).
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Writes that changed rows since open (all clones), counted as their commit ends: while
    /// it stays the same, nothing in the database changed.
    pub fn change_count(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How much longer campaign (bulk) messages wait, when they do: from the commit of a new
    /// inbound message until its reply was handed to a route, or it was decided that none
    /// goes, at most [`BULK_HOLD`]. Meanwhile the feeder queues no campaign message and the
    /// dispatcher claims none, so the reply's decision and claim do not queue behind their
    /// writes and the reply's tasks not behind their sends' (one thread runs them all).
    pub fn bulk_held(&self) -> Option<Duration> {
        self.bulk_hold.left()
    }

    /// Holds campaign messages back for `length` (or longer, if a hold runs already), as a
    /// new inbound message does for [`BULK_HOLD`].
    pub fn hold_bulk(&self, length: Duration) {
        self.bulk_hold.hold(length);
    }

    /// Ends the hold [`Store::bulk_held`] tells of, before its time.
    pub fn release_bulk(&self) {
        self.bulk_hold.release();
    }

    /// Notified whenever a new inbound message has been committed.
    pub fn inbound_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inbound.clone()
    }

    /// Notified whenever new messages were committed through [`Store::enqueue_placed`] or
    /// as inbound messages. Other paths that add rows (restores, the rules API's batches)
    /// do not signal it.
    pub fn added_signal(&self) -> Arc<tokio::sync::Notify> {
        self.added.clone()
    }

    fn inbound_added(&self) {
        self.bulk_hold.hold(BULK_HOLD);
        self.inbound.notify_one();
        self.added.notify_one();
    }

    /// Runs `f` in its own savepoint inside the next group commit; resolves once that commit
    /// is durable. If `f` fails, nothing it wrote remains.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(f, true).await
    }

    /// [`Store::write`] for a change a power cut may undo without harm: resolves once the
    /// commit is visible to every reader and survives the process being killed, but before
    /// it is on disk; it reaches the disk with the next durable commit (the WAL is synced
    /// whole and in order, so no later durable change can survive without it). A commit
    /// holding any durable job is durable.
    pub async fn write_deferred_sync<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(f, false).await
    }

    async fn submit<T, F>(&self, f: F, synced: bool) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let changes = self.changes.clone();
        let run: Box<dyn FnOnce(&Connection) -> Completion + Send> = Box::new(move |conn| {
            let before = conn.total_changes();
            let result = in_savepoint(conn, f);
            let changed = conn.total_changes() != before;
            Box::new(move |commit: Result<(), String>| {
                // Counted before the answer, so whoever sees the answer sees the count.
                if changed {
                    changes.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
                let answer = match (commit, result) {
                    (_, Err(e)) => Err(e),
                    (Err(e), Ok(_)) => Err(StoreError::Commit(e)),
                    (Ok(()), Ok(v)) => Ok(v),
                };
                let _ = tx.send(answer);
            })
        });
        self.writer
            .send(WriteMsg::Job(WriteJob { run, synced }))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a query on a reader connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        // The reader with the fewest jobs waiting; the count drops when the job has run or
        // was dropped unrun.
        let slot = self
            .readers
            .iter()
            .min_by_key(|r| r.pending.load(std::sync::atomic::Ordering::Relaxed))
            .ok_or(StoreError::Closed)?;
        let pending = PendingJob::new(&slot.pending);
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(f(conn));
            drop(pending);
        });
        slot.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Asks every connection (the writer and each reader) to free the page cache it holds
    /// beyond what is in use; resolves once all have. Called when the daemon goes quiet, so
    /// what a burst of traffic read stays cached only while traffic lasts. Not a write: no
    /// transaction, nothing counted.
    pub async fn release_memory(&self) {
        let mut answers = Vec::with_capacity(self.readers.len() + 1);
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriteMsg::Release(tx)).await.is_ok() {
            answers.push(rx);
        }
        for slot in self.readers.iter() {
            let (tx, rx) = oneshot::channel();
            let job: ReadJob = Box::new(move |conn| release_connection(conn, tx));
            if slot.jobs.send(job).await.is_ok() {
                answers.push(rx);
            }
        }
        for rx in answers {
            let _ = rx.await;
        }
    }

    /// Finishes queued writes, checkpoints the WAL and closes the write connection.
    /// Later writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(WriteMsg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    // ----- message operations -------------------------------------------------------------

    /// Queues outbound messages in one transaction: all or none.
    pub async fn enqueue(&self, items: Vec<NewOutbound>) -> Result<Vec<MessageId>, StoreError> {
        let placed = self.enqueue_placed(items).await?;
        Ok(placed.into_iter().map(|(id, _)| id).collect())
    }

    /// Like [`Store::enqueue`], with the state each message got: `queued`, `scheduled` (its
    /// delivery window is closed) or `cancelled` (the recipient opted out).
    pub async fn enqueue_placed(
        &self,
        items: Vec<NewOutbound>,
    ) -> Result<Vec<(MessageId, State)>, StoreError> {
        let now = self.now_ms();
        let placed = self
            .write(move |c| messages::insert_outbound(c, &items, now))
            .await?;
        self.added.notify_one();
        Ok(placed)
    }

    /// Stores an inbound message; `false` when it was a duplicate delivery.
    pub async fn insert_inbound(&self, m: NewInbound) -> Result<(MessageId, bool), StoreError> {
        let now = self.now_ms();
        let result = self
            .write(move |c| messages::insert_inbound(c, &m, now))
            .await?;
        if result.1 {
            self.inbound_added();
        }
        Ok(result)
    }

    /// [`messages::insert_inbound_unless_recent`] in one transaction.
    pub async fn insert_inbound_unless_recent(
        &self,
        m: NewInbound,
        window_ms: i64,
    ) -> Result<(MessageId, bool), StoreError> {
        let now = self.now_ms();
        let result = self
            .write(move |c| messages::insert_inbound_unless_recent(c, &m, now, window_ms))
            .await?;
        if result.1 {
            self.inbound_added();
        }
        Ok(result)
    }

    pub async fn get(&self, id: MessageId) -> Result<Message, StoreError> {
        self.read(move |c| messages::get(c, id)).await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<Vec<Message>, StoreError> {
        self.read(move |c| messages::list(c, &filter)).await
    }

    /// Claims up to `limit` due messages with a priority within `priorities` (see
    /// [`messages::claim_due`]). The claim is visible to every writer before this returns (a
    /// pause or a second route cannot take the messages any more) but its commit does not wait
    /// for the disk: a claim a power cut undoes leaves its messages `queued`, which is where
    /// a restart puts every `sending` message anyway (`requeue_sending`). The outcome of each
    /// send is stored durably, and takes the claim to disk with it.
    pub async fn claim_due(
        &self,
        channel: Channel,
        transport: &str,
        limit: u32,
        priorities: std::ops::RangeInclusive<Priority>,
    ) -> Result<Vec<Message>, StoreError> {
        let now = self.now_ms();
        let transport = transport.to_string();
        self.write_deferred_sync(move |c| {
            messages::claim_due(c, channel, &transport, now, limit, priorities)
        })
        .await
    }

    /// Whether a reply `transport` may take is due (a read: no write when none is).
    pub async fn reply_due(&self, channel: Channel, transport: String) -> Result<bool, StoreError> {
        let now = self.now_ms();
        self.read(move |c| messages::reply_due(c, channel, &transport, now))
            .await
    }

    pub async fn next_due(
        &self,
        routes: Vec<(Channel, String)>,
    ) -> Result<Option<i64>, StoreError> {
        self.read(move |c| messages::next_due(c, &routes)).await
    }

    pub async fn record_outcome(&self, id: MessageId, outcome: Outcome) -> Result<(), StoreError> {
        let now = self.now_ms();
        self.write(move |c| messages::record_outcome(c, id, &outcome, now))
            .await
    }

    pub async fn apply_status(
        &self,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> Result<Option<MessageId>, StoreError> {
        let now = self.now_ms();
        let (t, r) = (transport.to_string(), provider_ref.to_string());
        self.write(move |c| messages::apply_status(c, &t, &r, &update, now))
            .await
    }

    /// See [`messages::apply_status_by_id`].
    pub async fn apply_status_by_id(
        &self,
        id: MessageId,
        transport: &str,
        provider_ref: &str,
        update: StatusUpdate,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let (t, r) = (transport.to_string(), provider_ref.to_string());
        self.write(move |c| messages::apply_status_by_id(c, id, &t, &r, &update, now))
            .await
    }

    pub async fn cancel(&self, id: MessageId) -> Result<Message, StoreError> {
        let now = self.now_ms();
        self.write(move |c| messages::cancel(c, id, now)).await
    }

    pub async fn resend(&self, id: MessageId) -> Result<Message, StoreError> {
        let now = self.now_ms();
        self.write(move |c| messages::resend(c, id, now)).await
    }

    pub async fn requeue_sending(&self) -> Result<Vec<MessageId>, StoreError> {
        let now = self.now_ms();
        self.write(move |c| messages::requeue_sending(c, now)).await
    }

    pub async fn requeue(&self, ids: Vec<MessageId>) -> Result<usize, StoreError> {
        let now = self.now_ms();
        self.write(move |c| messages::requeue(c, &ids, now)).await
    }

    pub async fn count_by_state(
        &self,
        states: Vec<State>,
    ) -> Result<Vec<(State, u64)>, StoreError> {
        self.read(move |c| messages::count_by_state(c, &states))
            .await
    }

    /// Stores a received SMS or SMS part; see [`sms::receive`].
    pub async fn receive_sms(&self, part: sms::InboundSms) -> Result<sms::Received, StoreError> {
        let now = self.now_ms();
        let received = self.write(move |c| sms::receive(c, &part, now)).await?;
        if matches!(received, sms::Received::Message(_)) {
            self.inbound_added();
        }
        Ok(received)
    }

    /// Stores long messages still missing parts after `max_age_ms` as incomplete.
    pub async fn flush_incomplete_sms(
        &self,
        max_age_ms: i64,
    ) -> Result<Vec<MessageId>, StoreError> {
        let now = self.now_ms();
        let flushed = self
            .write(move |c| sms::flush_incomplete(c, now - max_age_ms, now))
            .await?;
        if !flushed.is_empty() {
            self.inbound_added();
        }
        Ok(flushed)
    }

    pub async fn record_part_sent(
        &self,
        message: MessageId,
        seq: u8,
        total: u8,
        transport: &str,
        mr: u8,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let t = transport.to_string();
        self.write(move |c| sms::record_part_sent(c, message, seq, total, &t, mr, now))
            .await?;
        crate::metrics::global().count_sms_part_sent();
        Ok(())
    }

    pub async fn parts_sent(&self, message: MessageId) -> Result<Vec<u8>, StoreError> {
        self.read(move |c| sms::parts_sent(c, message)).await
    }

    pub async fn apply_part_status(
        &self,
        transport: &str,
        mr: u8,
        recipient: &str,
        status: sms::PartStatus,
    ) -> Result<Option<MessageId>, StoreError> {
        let now = self.now_ms();
        let (t, r) = (transport.to_string(), recipient.to_string());
        self.write(move |c| sms::apply_part_status(c, &t, mr, &r, &status, now))
            .await
    }

    /// A small integer setting kept in the database (`meta` table).
    pub async fn meta_get(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let key = key.to_string();
        self.read(move |c| {
            use rusqlite::OptionalExtension;
            Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    pub async fn meta_set(&self, key: &str, value: Option<i64>) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |c| meta_put(c, &key, value)).await
    }

    /// Adds up to `chunk` messages to the text-search index; returns how many were added.
    pub async fn index_text(&self, chunk: u32) -> Result<usize, StoreError> {
        self.write(move |c| messages::index_text(c, chunk)).await
    }

    pub async fn queue_depth(&self) -> Result<u64, StoreError> {
        self.read(messages::queue_depth).await
    }

    /// Waiting messages (scheduled, queued, sending) by state and priority, for the metrics.
    pub async fn queue_breakdown(&self) -> Result<Vec<(State, Priority, u64)>, StoreError> {
        self.read(messages::queue_breakdown).await
    }
}

/// Counts every message state change the writer records in the process's metrics
/// (`pasarela_messages_total`): temporary triggers on this connection only (not part of the
/// schema, so no migration) call a function that bumps a counter. Every write path is covered,
/// as with the `message_states` history. A change rolled back after its statement ran is
/// counted all the same: a counter may run ahead by the rare failed transaction.
fn count_state_changes(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "pasarela_count_state",
        3,
        FunctionFlags::SQLITE_UTF8,
        |ctx| {
            let word = |i| match ctx.get_raw(i) {
                ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
                _ => "",
            };
            if let (Some(c), Some(d), Some(s)) = (
                Channel::parse(word(0)),
                Direction::parse(word(1)),
                State::parse(word(2)),
            ) {
                crate::metrics::global().count_message(c, d, s);
            }
            Ok(0)
        },
    )?;
    conn.execute_batch(
        "CREATE TEMP TRIGGER metrics_state_first AFTER INSERT ON main.messages
         BEGIN SELECT pasarela_count_state(NEW.channel, NEW.direction, NEW.state); END;
         CREATE TEMP TRIGGER metrics_state_change AFTER UPDATE OF state ON main.messages
         WHEN NEW.state <> OLD.state
         BEGIN SELECT pasarela_count_state(NEW.channel, NEW.direction, NEW.state); END;",
    )
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: a commit does not wait for the disk; the writer's sync thread syncs the WAL
    // after each commit holding a durable job and only then answers it (see `sync_loop`).
    // WAL mode at NORMAL stays consistent after a power cut.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    messages::register_functions(conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let known = schema::MIGRATIONS.len() as i64;
    // One line for the whole upgrade, not one per step: a new database takes every step.
    let mut from = None;
    loop {
        // Read the version inside the write lock: two processes opening a new database at once
        // must not both run the same migration.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > known {
            conn.execute_batch("ROLLBACK")?;
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        if found == known {
            conn.execute_batch("COMMIT")?;
            if let Some(from) = from {
                log::info!("database schema migrated from version {from} to {known}");
            }
            return Ok(());
        }
        from.get_or_insert(found);
        let version = found + 1;
        let sql = schema::MIGRATIONS[found as usize];
        conn.execute_batch(&format!("{sql}; PRAGMA user_version = {version}; COMMIT;"))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<WriteMsg>,
    wal: PathBuf,
    syncs: Arc<std::sync::atomic::AtomicU64>,
    hold: Arc<BulkHold>,
) {
    // Whether checkpoints are put off (see `checkpoint_pages`).
    let mut deferring = false;
    let (sync_tx, sync_rx) = std::sync::mpsc::channel::<Vec<Completion>>();
    let syncer = std::thread::Builder::new()
        .name("store-sync".into())
        .spawn(move || sync_loop(&wal, sync_rx, &syncs));
    // Without the sync thread each durable commit syncs on this one (`synchronous = FULL`).
    let (sync_tx, syncer) = match syncer {
        Ok(handle) => (Some(sync_tx), Some(handle)),
        Err(e) => {
            log::warn!("database: no sync thread ({e}); every durable commit syncs in turn");
            (None, None)
        }
    };
    let mut batch: Vec<WriteJob> = Vec::with_capacity(64);
    let mut closing = None;
    while closing.is_none() {
        match rx.blocking_recv() {
            Some(WriteMsg::Job(job)) => batch.push(job),
            Some(WriteMsg::Close(done)) => closing = Some(done),
            Some(WriteMsg::Release(done)) => release_connection(&conn, done),
            None => break,
        }
        while closing.is_none() && batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(WriteMsg::Job(job)) => batch.push(job),
                Ok(WriteMsg::Close(done)) => closing = Some(done),
                Ok(WriteMsg::Release(done)) => release_connection(&conn, done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let defer = hold.left().is_some();
            if defer != deferring {
                deferring = defer;
                if let Err(e) =
                    conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages(defer))
                {
                    log::warn!("database: cannot set the checkpoint threshold: {e}");
                }
            }
            run_group(&conn, &mut batch, sync_tx.as_ref(), &mut rx, &mut closing);
        }
    }
    // Refuse what is still queued, then close cleanly: folding the WAL back into the
    // database file leaves a single file for backups. The sync thread answers what it holds
    // and ends once its queue is dropped.
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        if let WriteMsg::Close(done) = msg {
            let _ = done.send(());
        }
    }
    drop(sync_tx);
    if let Some(handle) = syncer {
        let _ = handle.join();
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        log::warn!("closing the database: checkpoint failed: {e}");
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// WAL pages after which a commit folds the WAL back into the database (SQLite's automatic
/// checkpoint, which syncs the WAL and the database on the writer). SQLite's own threshold,
/// except while a customer's message is being answered ([`Store::bulk_held`]): then a
/// checkpoint waits, so the reply's writes do not wait behind it, unless the WAL grew to 8
/// times that (32 MB with 4 KiB pages). A hold lasts 50 ms at most.
fn checkpoint_pages(deferred: bool) -> i64 {
    const PAGES: i64 = 1000;
    if deferred { PAGES * 8 } else { PAGES }
}

/// The write-ahead log beside the database file (`<db>-wal`).
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Syncs the WAL for the durable commits handed over by the writer and then answers them: one
/// sync for every commit waiting, while the writer goes on with the next group instead of
/// waiting for the disk (a claim or a reply never waits behind the campaign outcomes' sync).
/// The commits are in the WAL file when they reach this thread, so syncing the file takes
/// each of them to disk; a checkpoint that moved them into the database meanwhile synced the
/// database first, and the WAL restarts only after such a checkpoint.
fn sync_loop(
    wal: &Path,
    rx: std::sync::mpsc::Receiver<Vec<Completion>>,
    syncs: &std::sync::atomic::AtomicU64,
) {
    while let Ok(mut waiting) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            waiting.extend(more);
        }
        let synced = std::fs::OpenOptions::new()
            .write(true)
            .open(wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| format!("cannot sync {}: {e}", wal.display()));
        if let Err(e) = &synced {
            log::error!("database: {e}");
        }
        syncs.fetch_add(1, std::sync::atomic::Ordering::Release);
        for done in waiting {
            done(synced.clone());
        }
    }
}

/// Runs `batch` in one transaction. Deferred jobs are answered once the commit is done; the
/// durable ones once the WAL is synced after it, by the sync thread (`sync`), or at once when
/// there is none after a commit at `synchronous = FULL`. A commit holding durable jobs also
/// takes the jobs that arrived while the batch ran, as group commit does.
fn run_group(
    conn: &Connection,
    batch: &mut Vec<WriteJob>,
    sync: Option<&std::sync::mpsc::Sender<Vec<Completion>>>,
    rx: &mut mpsc::Receiver<WriteMsg>,
    closing: &mut Option<oneshot::Sender<()>>,
) {
    let synced = batch.iter().any(|j| j.synced);
    let level_error = match (synced, sync) {
        (true, None) => conn
            .pragma_update(None, "synchronous", "FULL")
            .err()
            .map(|e| format!("cannot make the commit durable: {e}")),
        _ => None,
    };
    // Without an outer transaction each savepoint commits on its own: slower, still correct.
    let changes_before = conn.total_changes();
    let grouped = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
    let mut done: Vec<(bool, Completion)> = batch
        .drain(..)
        .map(|job| (job.synced, (job.run)(conn)))
        .collect();
    let mut released = Vec::new();
    while grouped && synced && closing.is_none() && done.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(WriteMsg::Job(job)) => done.push((job.synced, (job.run)(conn))),
            Ok(WriteMsg::Close(close)) => *closing = Some(close),
            Ok(WriteMsg::Release(r)) => released.push(r),
            Err(_) => break,
        }
    }
    let commit = if let Some(e) = level_error {
        let _ = conn.execute_batch("ROLLBACK");
        Err(e)
    } else if grouped {
        conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        })
    } else {
        Ok(())
    };
    if synced && sync.is_none() {
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
    }
    if let Err(e) = &commit {
        log::error!("database commit failed: {e}");
    }
    // A commit that changed no row wrote nothing to the WAL (the jobs only looked, or had
    // nothing to do: an idle loop's write), so there is nothing to sync: answering at once
    // spares the sync thread a wake-up and the disk a flush. The jobs change rows with
    // INSERT, UPDATE and DELETE only (schema changes happen in `migrate`, before the writer
    // starts), and those are what `total_changes` counts.
    let wrote = conn.total_changes() != changes_before;
    let mut durable = Vec::new();
    for (job_synced, complete) in done {
        match (&commit, job_synced, sync) {
            (Ok(()), true, Some(_)) if wrote => durable.push(complete),
            _ => complete(commit.clone()),
        }
    }
    if let (false, Some(sync)) = (durable.is_empty(), sync)
        && let Err(std::sync::mpsc::SendError(unsynced)) = sync.send(durable)
    {
        // The sync thread is gone (it cannot end while this one lives, short of a panic).
        let answer = Err("the database's sync thread stopped".to_string());
        for complete in unsynced {
            complete(answer.clone());
        }
    }
    for r in released {
        release_connection(conn, r);
    }
}

/// One reader thread's queue. Each reader has its own, so a job wakes only the thread that
/// runs it (one shared queue behind a lock woke both readers for every query).
struct ReaderSlot {
    jobs: mpsc::Sender<ReadJob>,
    /// Jobs handed to this reader and not yet run: queries go to the least busy reader.
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a read job as pending on its reader until dropped (run or not).
struct PendingJob(Arc<std::sync::atomic::AtomicUsize>);

impl PendingJob {
    fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> PendingJob {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PendingJob(count.clone())
    }
}

impl Drop for PendingJob {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Frees the page cache `conn` holds beyond what is in use (the pages stay in the OS's file
/// cache, so reading them again is a copy, not a disk read), then answers `done`.
fn release_connection(conn: &Connection, done: oneshot::Sender<()>) {
    if let Err(e) = conn.release_memory() {
        log::debug!("releasing a database connection's cache: {e}");
    }
    let _ = done.send(());
}

fn reader_loop(conn: Connection, mut rx: mpsc::Receiver<ReadJob>) {
    while let Some(job) = rx.blocking_recv() {
        job(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound LIMIT written `?N` makes SQLite recompile the statement each time it is bound;
    /// `+?N` does not (see `messages::CLAIM_SQL`).
    #[test]
    fn a_bound_limit_does_not_recompile_the_statement() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        messages::register_functions(&conn).unwrap();
        for limit in [1, 4, 2] {
            messages::claim_due(
                &conn,
                Channel::Sms,
                "modem1",
                now_ms(),
                limit,
                Priority::Reply..=Priority::Bulk,
            )
            .unwrap();
        }
        let claim = conn.prepare_cached(&messages::CLAIM_SQL).unwrap();
        assert_eq!(claim.get_status(rusqlite::StatementStatus::RePrepare), 0);
        // The plain form does recompile: the check above would catch a regression.
        let mut plain = conn
            .prepare(&["SELECT id FROM messages ORDER BY id LIMIT", " ?1"].concat())
            .unwrap();
        for limit in [1, 4] {
            plain.query([limit]).unwrap().next().unwrap();
        }
        assert!(plain.get_status(rusqlite::StatementStatus::RePrepare) > 0);
        // And no statement of the store binds a plain LIMIT.
        for (file, text) in [
            ("messages.rs", include_str!("messages.rs")),
            ("campaigns.rs", include_str!("campaigns.rs")),
            ("directory.rs", include_str!("directory.rs")),
            ("outages.rs", include_str!("outages.rs")),
            ("retention.rs", include_str!("retention.rs")),
            ("sms.rs", include_str!("sms.rs")),
            ("overview.rs", include_str!("overview.rs")),
            ("users.rs", include_str!("users.rs")),
            ("sink.rs", include_str!("sink.rs")),
            ("backup.rs", include_str!("backup.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("web/pages.rs", include_str!("../web/pages.rs")),
        ] {
            let plain = ["LIMIT", " ?"].concat();
            assert!(!text.contains(&plain), "{file} binds a plain LIMIT");
        }
    }

    fn out(peer: &str, body: &str, priority: Priority) -> NewOutbound {
        NewOutbound {
            channel: Channel::Sms,
            peer: peer.into(),
            body: body.into(),
            priority,
            customer_id: None,
            window: None,
            not_before: None,
        }
    }

    #[tokio::test]
    async fn a_snapshot_moves_with_any_commit_that_changed_rows_here_or_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.meta_set("k", Some(1)).await.unwrap();
        let before = store.snapshot();
        // Reads and a write that changes nothing leave it as it was.
        assert_eq!(store.meta_get("k").await.unwrap(), Some(1));
        assert_eq!(store.index_text(100).await.unwrap(), 0);
        assert_eq!(store.snapshot(), before);
        store.meta_set("k", Some(2)).await.unwrap();
        let here = store.snapshot();
        assert_ne!(here, before, "a change through this store");
        // Another process's commit (its own connection to the file) is seen too.
        let other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        other
            .execute("UPDATE meta SET value = 3 WHERE key = 'k'", [])
            .unwrap();
        assert_ne!(
            store.snapshot(),
            here,
            "a change through another connection"
        );
        assert_eq!(store.meta_get("k").await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn a_new_inbound_message_holds_campaign_messages_and_checkpoints_back_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.bulk_held(), None);
        let inbound = NewInbound {
            channel: Channel::Sms,
            transport: "modem1".into(),
            peer: "+5491123456789".into(),
            body: "saldo".into(),
            provider_ref: Some("k1".into()),
        };
        let (_, new) = store.insert_inbound(inbound.clone()).await.unwrap();
        assert!(new);
        // Armed (read without the clock: a loaded machine may take longer than the hold to
        // get here).
        let armed = |store: &Store| {
            store
                .bulk_hold
                .until_us
                .load(std::sync::atomic::Ordering::Acquire)
                != 0
        };
        assert!(armed(&store), "held after an inbound message");
        assert!(store.bulk_held().is_none_or(|left| left <= BULK_HOLD));
        store.release_bulk();
        assert_eq!(store.bulk_held(), None);
        // A duplicate delivery is no new message: nothing is held.
        let (_, new) = store.insert_inbound(inbound).await.unwrap();
        assert!(!new);
        assert!(!armed(&store));
        // While held, the writer puts checkpoints off (a commit then folds no WAL back).
        let threshold = |store: Store| async move {
            store
                .write(|c| {
                    Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get::<_, i64>(0))?)
                })
                .await
        };
        store.hold_bulk(Duration::from_secs(3600));
        assert_eq!(
            threshold(store.clone()).await.unwrap(),
            checkpoint_pages(true)
        );
        store.release_bulk();
        assert_eq!(
            threshold(store.clone()).await.unwrap(),
            checkpoint_pages(false)
        );
        assert!(checkpoint_pages(true) > checkpoint_pages(false));
        // A hold ends by itself.
        store.hold_bulk(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.bulk_held(), None);
    }

    #[test]
    fn a_last_look_holds_until_the_database_the_key_or_its_due_time_moves() {
        let a = Snapshot {
            changes: 1,
            wal: None,
        };
        let b = Snapshot {
            changes: 2,
            wal: None,
        };
        let mut look: LastLook<u8> = LastLook::default();
        assert!(look.needed(&a, &0, 0), "never looked");
        look.record(a.clone(), 0, Some(1_000));
        assert!(!look.needed(&a, &0, 999));
        assert!(look.needed(&b, &0, 999), "the database changed");
        assert!(look.needed(&a, &1, 999), "the key changed");
        assert!(look.needed(&a, &0, 1_000), "its due time came");
        assert_eq!(look.due(), Some(1_000));
        look.record(a.clone(), 0, None);
        assert!(
            !look.needed(&a, &0, i64::MAX),
            "nothing due: holds for ever"
        );
        look.forget();
        assert!(look.needed(&a, &0, 0));
    }

    #[tokio::test]
    async fn releasing_memory_is_not_a_write_and_the_store_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![out("+5491100000001", "hola", Priority::Reply)])
            .await
            .unwrap();
        let (writes, changes) = (store.write_count(), store.change_count());
        store.release_memory().await;
        assert_eq!(store.write_count(), writes);
        assert_eq!(store.change_count(), changes);
        assert_eq!(store.queue_depth().await.unwrap(), 1);
        let more = store
            .enqueue(vec![out("+5491100000002", "chau", Priority::Reply)])
            .await
            .unwrap();
        assert_ne!(ids, more);
        assert_eq!(store.queue_depth().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn enqueue_claim_and_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![
                out("+5491100000001", "bulk", Priority::Bulk),
                out("+5491100000002", "note", Priority::Notification),
                out("+5491100000003", "reply", Priority::Reply),
            ])
            .await
            .unwrap();
        let claimed = store
            .claim_due(Channel::Sms, "t1", 2, Priority::Reply..=Priority::Bulk)
            .await
            .unwrap();
        let bodies: Vec<_> = claimed.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["reply", "note"]);
        assert!(
            claimed
                .iter()
                .all(|m| m.state == State::Sending && m.attempts == 1)
        );

        store
            .record_outcome(
                claimed[0].id,
                Outcome::Sent {
                    provider_ref: Some("7".into()),
                    note: None,
                    answer: None,
                },
            )
            .await
            .unwrap();
        store
            .record_outcome(
                claimed[1].id,
                Outcome::Retry {
                    error: "busy".into(),
                    retry_at: now_ms() + 60_000,
                },
            )
            .await
            .unwrap();
        // The retried one is not due; the bulk one is next.
        let next = store
            .claim_due(Channel::Sms, "t1", 5, Priority::Reply..=Priority::Bulk)
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, ids[0]);

        let delivered = store
            .apply_status("t1", "7", StatusUpdate::Delivered)
            .await
            .unwrap();
        assert_eq!(delivered, Some(claimed[0].id));
        assert_eq!(
            store.get(claimed[0].id).await.unwrap().state,
            State::Delivered
        );
        // Read moves a delivered message on; a late delivered or failed report does not move
        // it back, and a repeated read changes nothing.
        for update in [
            StatusUpdate::Read,
            StatusUpdate::Delivered,
            StatusUpdate::Failed { reason: "x".into() },
            StatusUpdate::Read,
        ] {
            store.apply_status("t1", "7", update).await.unwrap();
            let m = store.get(claimed[0].id).await.unwrap();
            assert_eq!((m.state, m.last_error), (State::Read, None));
        }
        let first = claimed[0].id.0;
        let log = store
            .read(move |c| overview::state_changes(c, first))
            .await
            .unwrap();
        let states: Vec<&str> = log.iter().map(|s| s.state.as_str()).collect();
        assert_eq!(states, ["queued", "sending", "sent", "delivered", "read"]);
        // A second outcome for a message no longer sending is a conflict, not a change.
        let err = store
            .record_outcome(claimed[0].id, Outcome::Failed { error: "x".into() })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
    }

    #[tokio::test]
    async fn a_durable_write_is_answered_after_a_sync_and_a_deferred_one_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let level = |c: &Connection| -> Result<i64, StoreError> {
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        let before = store.sync_count();
        let id = store
            .write_deferred_sync(move |c| {
                let ids = messages::insert_outbound(c, &[out("+1", "a", Priority::Bulk)], 1)?;
                Ok((ids[0].0, level(c)?))
            })
            .await
            .unwrap();
        // NORMAL (1): commits never wait for the disk on the writer; the sync thread syncs.
        assert_eq!(id.1, 1);
        assert_eq!(
            store.sync_count(),
            before,
            "a deferred write alone is not synced"
        );
        // Committed: another connection reads it as soon as the answer came.
        assert_eq!(store.get(id.0).await.unwrap().body, "a");
        // A durable write that changes nothing has nothing to sync.
        store.write(level).await.unwrap();
        assert_eq!(store.sync_count(), before);
        store
            .write(|c| messages::insert_outbound(c, &[out("+2", "b", Priority::Bulk)], 1))
            .await
            .unwrap();
        assert!(
            store.sync_count() > before,
            "a durable write is answered only after the WAL was synced"
        );
        // Deferred and durable writes together: both answered, the durable one after a sync.
        let before = store.sync_count();
        let (deferred, durable) = tokio::join!(
            store.write_deferred_sync(level),
            store.write(|c| messages::insert_outbound(c, &[out("+3", "c", Priority::Bulk)], 1))
        );
        assert!(deferred.is_ok() && durable.is_ok());
        assert!(store.sync_count() > before);
        // Closing answers every durable write first, then folds the WAL into the database.
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = store.clone();
            writes.spawn(async move {
                store
                    .enqueue(vec![out(&format!("+{i}"), "b", Priority::Bulk)])
                    .await
            });
        }
        while let Some(r) = writes.join_next().await {
            r.unwrap().unwrap();
        }
        store.close().await;
        let wal = wal_path(&dir.path().join(DB_FILE));
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn failing_job_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.enqueue(vec![out("+1", "a", Priority::Bulk)]);
        let b = store.write(|c| {
            messages::insert_outbound(c, &[out("+2", "b", Priority::Bulk)], 1)?;
            Err::<(), _>(StoreError::Conflict("no".into()))
        });
        let c = store.enqueue(vec![out("+3", "c", Priority::Bulk)]);
        let (a, b, c) = tokio::join!(a, b, c);
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        let all = store
            .list(ListFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let bodies: Vec<_> = all.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["c", "a"]);
    }

    #[tokio::test]
    async fn cancel_resend_and_requeue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store
            .enqueue(vec![
                out("+1", "a", Priority::Bulk),
                out("+2", "b", Priority::Bulk),
            ])
            .await
            .unwrap();
        let m = store.cancel(ids[0]).await.unwrap();
        assert_eq!(m.state, State::Cancelled);
        assert!(matches!(
            store.cancel(ids[0]).await,
            Err(StoreError::Conflict(_))
        ));
        let m = store.resend(ids[0]).await.unwrap();
        assert_eq!((m.id, m.state), (ids[0], State::Queued));
        assert!(matches!(
            store.resend(ids[1]).await,
            Err(StoreError::Conflict(_))
        ));

        let claimed = store
            .claim_due(Channel::Sms, "t", 10, Priority::Reply..=Priority::Bulk)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(matches!(
            store.cancel(ids[1]).await,
            Err(StoreError::Conflict(_))
        ));
        let back = store.requeue_sending().await.unwrap();
        assert_eq!(back.len(), 2);
        store
            .record_outcome(
                ids[1],
                Outcome::Sent {
                    provider_ref: None,
                    note: None,
                    answer: None,
                },
            )
            .await
            .unwrap_err();
        let claimed = store
            .claim_due(Channel::Sms, "t", 10, Priority::Reply..=Priority::Bulk)
            .await
            .unwrap();
        store
            .record_outcome(
                claimed[0].id,
                Outcome::Sent {
                    provider_ref: None,
                    note: None,
                    answer: None,
                },
            )
            .await
            .unwrap();
        let copy = store.resend(claimed[0].id).await.unwrap();
        assert_ne!(copy.id, claimed[0].id);
        assert_eq!(copy.state, State::Queued);
        assert!(matches!(
            store.get(MessageId(999)).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn text_search_ignores_case_and_accents() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .enqueue(vec![
                out("+1", "Estimado Señor Núñez, su saldo", Priority::Bulk),
                out("+2", "Corte programado", Priority::Bulk),
                out("+3", "50% de descuento", Priority::Bulk),
            ])
            .await
            .unwrap();
        let find = |q: &str| {
            let store = store.clone();
            let q = q.to_string();
            async move {
                store
                    .list(ListFilter {
                        q: Some(q),
                        limit: 10,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|m| m.peer)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(find("nunez").await, ["+1"], "scanned before indexing");
        assert_eq!(store.index_text(2).await.unwrap(), 2);
        assert_eq!(find("nunez").await, ["+1"], "found in the index");
        assert_eq!(store.index_text(100).await.unwrap(), 1);
        assert_eq!(store.index_text(100).await.unwrap(), 0);
        assert_eq!(find("NÚÑEZ").await, ["+1"]);
        assert_eq!(find("SALDO").await, ["+1"]);
        assert_eq!(find("grama").await, ["+2"]);
        assert_eq!(find("0%").await, ["+3"]);
        assert_eq!(find("%").await, ["+3"]);
        assert_eq!(find("\"x").await, Vec::<String>::new());
        assert_eq!(find("o").await.len(), 3);
    }

    #[tokio::test]
    async fn inbound_duplicates_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = NewInbound {
            channel: Channel::Sms,
            transport: "modem1".into(),
            peer: "+5491123456789".into(),
            body: "saldo".into(),
            provider_ref: Some("abc".into()),
        };
        let (id1, new1) = store.insert_inbound(m.clone()).await.unwrap();
        let (id2, new2) = store.insert_inbound(m).await.unwrap();
        assert_eq!(id1, id2);
        assert!(new1 && !new2);
    }

    #[tokio::test]
    async fn newer_schema_is_refused_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .enqueue(vec![out("+1", "a", Priority::Bulk)])
                .await
                .unwrap();
            store.close().await;
            assert!(matches!(
                store.enqueue(vec![out("+1", "a", Priority::Bulk)]).await,
                Err(StoreError::Closed)
            ));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.queue_depth().await.unwrap(), 1);
        store.close().await;
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }
}
