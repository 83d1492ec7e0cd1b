//! A vhost's message log: append-only segment files, their ack files, recovery,
//! and the group-commit thread.
//!
//! Layout under the vhost's directory: `msgs.NNNNNNNNNN` segments of records
//! (see `record.rs`), rotated at [`SEGMENT_SIZE`], and beside each an
//! `acks.NNNNNNNNNN` file of 8-byte entries `[u32 record offset][u32 queue id
//! << 1 | delivered]`. A message routed to several durable queues is written
//! once and listed with all their ids; each queue settles its own reference.
//! A segment whose references are all settled is deleted with its ack file, so
//! disk use follows the backlog, not the history. Nothing here is kept per
//! message in memory except by the queues themselves (a [`Location`] each).
//!
//! Durability: appends are `write(2)`s to the page cache, so a crash of the
//! process loses nothing written. Publisher confirms wait for the group-commit
//! thread, which `fdatasync`s every segment written since its last round and then
//! sends all the acks that round covers: one fsync per round, however many
//! messages arrived meanwhile. Ack and delivery entries are buffered and written
//! every [`ACK_FLUSH`] (and at shutdown), never fsynced: a crash can bring back
//! messages acked in that window, as RabbitMQ can.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{error, info, warn};

use super::record::{self, Read, StoredMessage, RECORD_HEADER};

/// Segments rotate once they pass this size (a larger record gets one alone).
pub(crate) const SEGMENT_SIZE: u64 = 8 * 1024 * 1024;
/// How often buffered ack and delivery entries are written.
pub(crate) const ACK_FLUSH: Duration = Duration::from_millis(10);

/// Where a stored message is: segment, offset and length of its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u32,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

/// One message found by recovery, for one queue.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) queue: u32,
    pub(crate) location: Location,
    /// It had been delivered before the restart (so it comes back redelivered).
    pub(crate) delivered: bool,
    pub(crate) body_len: u32,
    /// When it was stored (ms since the epoch): TTLs count from there.
    pub(crate) timestamp: u64,
    /// Its priority property (0 when absent).
    pub(crate) priority: u8,
    /// Its expiration property, in milliseconds.
    pub(crate) expiration: Option<u64>,
}

struct Segment {
    id: u32,
    file: File,
    /// References (message × queue) written into this segment and not yet
    /// settled when counting started.
    refs: AtomicU64,
    settled: AtomicU64,
    sealed: AtomicBool,
}

struct Writer {
    active: Arc<Segment>,
    len: u64,
    /// Segments written since the last fsync round.
    dirty: Vec<Arc<Segment>>,
    scratch: Vec<u8>,
}

/// Who is told that what it wrote is on disk (a channel's publisher
/// confirms, a transaction's commit: the network layer implements it). The
/// store calls up through this trait and knows nothing of connections.
pub(crate) trait SyncListener: Send + Sync {
    /// One group-commit round for this listener: the tokens of its waiters,
    /// in the order they were registered, and whether the fsync succeeded.
    fn synced(&self, tokens: &[u64], ok: bool);
}

/// A listener to tell, with its token, once everything appended before it is
/// on disk.
pub(crate) struct SyncWaiter {
    pub(crate) listener: Arc<dyn SyncListener>,
    pub(crate) token: u64,
}

#[derive(Default)]
struct SyncState {
    waiting: Vec<SyncWaiter>,
    stop: bool,
}

pub(crate) struct MessageLog {
    dir: PathBuf,
    writer: Mutex<Writer>,
    segments: RwLock<BTreeMap<u32, Arc<Segment>>>,
    acks: Mutex<Vec<(u32, u32, u32)>>,
    next_id: AtomicU64,
    sync: Mutex<SyncState>,
    sync_wake: Condvar,
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("msgs.{id:010}"))
}

fn acks_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("acks.{id:010}"))
}

fn open_segment(dir: &Path, id: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(segment_path(dir, id))
}

impl MessageLog {
    /// Opens (and recovers) the log in `dir`. `live` says whether a queue id
    /// still exists; references to other queues are dropped. Returns the log and
    /// every unsettled message reference, in log order.
    pub(crate) fn open(
        dir: &Path,
        live: &dyn Fn(u32) -> bool,
    ) -> io::Result<(Arc<Self>, Vec<Recovered>)> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u32> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("msgs."))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        ids.sort_unstable();
        let mut recovered = Vec::new();
        let mut segments = BTreeMap::new();
        for &id in &ids {
            let refs = recover_segment(dir, id, live, &mut recovered)?;
            let segment = Arc::new(Segment {
                id,
                file: open_segment(dir, id)?,
                refs: AtomicU64::new(refs),
                settled: AtomicU64::new(0),
                sealed: AtomicBool::new(true),
            });
            segments.insert(id, segment);
        }
        // Sealed segments with nothing live are garbage; the newest is reused
        // for appends only if it is still small.
        let last = ids.last().copied();
        for (&id, seg) in &segments {
            if Some(id) != last && seg.refs.load(Ordering::Relaxed) == 0 {
                remove_files(dir, id);
            }
        }
        segments.retain(|id, s| Some(*id) == last || s.refs.load(Ordering::Relaxed) > 0);
        let active = match last.and_then(|id| segments.get(&id).cloned()) {
            Some(seg) if seg.file.metadata()?.len() < SEGMENT_SIZE => {
                seg.sealed.store(false, Ordering::Relaxed);
                seg
            }
            _ => {
                if let Some(seg) = last.and_then(|id| segments.get(&id).cloned()) {
                    if seg.refs.load(Ordering::Relaxed) == 0 {
                        segments.remove(&seg.id);
                        remove_files(dir, seg.id);
                    }
                }
                let id = last.map_or(1, |l| l + 1);
                let seg = Arc::new(Segment {
                    id,
                    file: open_segment(dir, id)?,
                    refs: AtomicU64::new(0),
                    settled: AtomicU64::new(0),
                    sealed: AtomicBool::new(false),
                });
                segments.insert(id, seg.clone());
                seg
            }
        };
        let len = active.file.metadata()?.len();
        if !recovered.is_empty() {
            info!(dir = %dir.display(), messages = recovered.len(), segments = segments.len(), "recovered messages");
        }
        let log = Arc::new(Self {
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                active,
                len,
                dirty: Vec::new(),
                scratch: Vec::new(),
            }),
            segments: RwLock::new(segments),
            acks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            sync: Mutex::new(SyncState::default()),
            sync_wake: Condvar::new(),
        });
        let syncer = log.clone();
        std::thread::Builder::new()
            .name("warren-sync".into())
            .spawn(move || syncer.run_syncer())?;
        Ok((log, recovered))
    }

    /// Appends a message for `queues`; the write reaches the page cache before
    /// this returns (fsync is the syncer's job).
    pub(crate) fn append(
        &self,
        queues: Vec<u32>,
        exchange: &str,
        routing_key: &str,
        raw_header: &Bytes,
        body: &Bytes,
    ) -> io::Result<Location> {
        let msg = StoredMessage {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            timestamp: now_millis(),
            queues,
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            raw_header: raw_header.clone(),
            body: body.clone(),
        };
        let refs = msg.queues.len() as u64;
        let mut w = self.writer.lock();
        let mut scratch = std::mem::take(&mut w.scratch);
        scratch.clear();
        record::encode(&mut scratch, &msg);
        if w.len > 0 && w.len + scratch.len() as u64 > SEGMENT_SIZE {
            self.rotate(&mut w)?;
        }
        let offset = w.len;
        let result = (&w.active.file).write_all(&scratch);
        if let Err(e) = result {
            // Leave no half record behind for recovery to trip on.
            let _ = w.active.file.set_len(offset);
            w.scratch = scratch;
            return Err(e);
        }
        let len = scratch.len() as u32;
        w.len += u64::from(len);
        w.active.refs.fetch_add(refs, Ordering::Relaxed);
        if !w.dirty.iter().any(|s| Arc::ptr_eq(s, &w.active)) {
            let active = w.active.clone();
            w.dirty.push(active);
        }
        if scratch.capacity() > 1 << 20 {
            scratch = Vec::new();
        }
        w.scratch = scratch;
        Ok(Location {
            segment: w.active.id,
            offset: offset as u32,
            len,
        })
    }

    fn rotate(&self, w: &mut Writer) -> io::Result<()> {
        let id = w.active.id + 1;
        let seg = Arc::new(Segment {
            id,
            file: open_segment(&self.dir, id)?,
            refs: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
        });
        self.segments.write().insert(id, seg.clone());
        let old = std::mem::replace(&mut w.active, seg);
        w.len = 0;
        old.sealed.store(true, Ordering::Release);
        self.maybe_delete(&old);
        Ok(())
    }

    /// Reads a stored message back.
    pub(crate) fn read(&self, at: Location) -> io::Result<StoredMessage> {
        let mut batch = self.read_batch(&[at])?;
        batch
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "record missing"))
    }

    /// Reads several stored messages; adjacent records of one segment are read
    /// with one `pread`.
    pub(crate) fn read_batch(&self, locations: &[Location]) -> io::Result<Vec<StoredMessage>> {
        let mut out = Vec::with_capacity(locations.len());
        let mut i = 0;
        while i < locations.len() {
            let first = locations[i];
            let mut end = i + 1;
            while end < locations.len()
                && locations[end].segment == first.segment
                && locations[end].offset == locations[end - 1].offset + locations[end - 1].len
                && (locations[end].offset + locations[end].len - first.offset) <= 4 << 20
            {
                end += 1;
            }
            let last = locations[end - 1];
            let span = (last.offset + last.len - first.offset) as usize;
            let segment = self
                .segments
                .read()
                .get(&first.segment)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "segment deleted"))?;
            let mut buf = vec![0u8; span];
            segment
                .file
                .read_exact_at(&mut buf, u64::from(first.offset))?;
            let buf = Bytes::from(buf);
            for at in &locations[i..end] {
                let start = (at.offset - first.offset) as usize;
                let data = buf.slice(start..start + at.len as usize);
                match record::read(&data) {
                    Read::Record { payload, .. } => match record::decode(payload) {
                        Some(msg) => out.push(msg),
                        None => return Err(corrupt(&self.dir, at)),
                    },
                    _ => return Err(corrupt(&self.dir, at)),
                }
            }
            i = end;
        }
        Ok(out)
    }

    /// Settles one queue's reference to a stored message (ack, drop, purge).
    pub(crate) fn settle(&self, at: Location, queue: u32) {
        self.acks.lock().push((at.segment, at.offset, queue << 1));
        let segment = self.segments.read().get(&at.segment).cloned();
        if let Some(segment) = segment {
            segment.settled.fetch_add(1, Ordering::AcqRel);
            self.maybe_delete(&segment);
        }
    }

    /// Notes that a stored message was delivered to a consumer of `queue`, so a
    /// restart brings it back marked redelivered.
    pub(crate) fn mark_delivered(&self, at: Location, queue: u32) {
        self.acks
            .lock()
            .push((at.segment, at.offset, queue << 1 | 1));
    }

    fn maybe_delete(&self, segment: &Arc<Segment>) {
        if !segment.sealed.load(Ordering::Acquire)
            || segment.settled.load(Ordering::Acquire) < segment.refs.load(Ordering::Acquire)
        {
            return;
        }
        if self.segments.write().remove(&segment.id).is_some() {
            remove_files(&self.dir, segment.id);
        }
    }

    /// Has `waiter` sent once everything appended so far is on disk.
    pub(crate) fn after_sync(&self, waiter: SyncWaiter) {
        self.sync.lock().waiting.push(waiter);
        self.sync_wake.notify_one();
    }

    /// Writes buffered ack entries, fsyncs, answers waiters, and stops the syncer.
    pub(crate) fn shutdown(&self) {
        self.sync.lock().stop = true;
        self.sync_wake.notify_one();
        self.flush_acks();
        let dirty = std::mem::take(&mut self.writer.lock().dirty);
        for seg in dirty {
            let _ = seg.file.sync_data();
        }
    }

    /// Bytes on disk in this log (segments and ack files).
    #[cfg(test)]
    pub(crate) fn disk_usage(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn flush_acks(&self) {
        let entries = std::mem::take(&mut *self.acks.lock());
        if entries.is_empty() {
            return;
        }
        let mut by_segment: HashMap<u32, Vec<u8>> = HashMap::new();
        for (segment, offset, tag) in entries {
            let buf = by_segment.entry(segment).or_default();
            buf.extend_from_slice(&offset.to_le_bytes());
            buf.extend_from_slice(&tag.to_le_bytes());
        }
        let live = self.segments.read();
        for (segment, buf) in by_segment {
            if !live.contains_key(&segment) {
                continue; // deleted meanwhile: nothing left to settle
            }
            let written = OpenOptions::new()
                .append(true)
                .create(true)
                .open(acks_path(&self.dir, segment))
                .and_then(|mut f| f.write_all(&buf));
            if let Err(e) = written {
                error!(dir = %self.dir.display(), segment, error = %e, "cannot write ack entries");
            }
        }
    }

    fn run_syncer(self: Arc<Self>) {
        loop {
            let (waiters, stop) = {
                let mut st = self.sync.lock();
                if st.waiting.is_empty() && !st.stop {
                    self.sync_wake.wait_for(&mut st, ACK_FLUSH);
                }
                (std::mem::take(&mut st.waiting), st.stop)
            };
            self.flush_acks();
            if !waiters.is_empty() {
                let dirty = std::mem::take(&mut self.writer.lock().dirty);
                let mut ok = true;
                for seg in &dirty {
                    if let Err(e) = seg.file.sync_data() {
                        error!(segment = seg.id, error = %e, "fsync failed; nacking confirms");
                        ok = false;
                    }
                }
                answer(waiters, ok);
            }
            if stop {
                return;
            }
        }
    }
}

fn answer(waiters: Vec<SyncWaiter>, ok: bool) {
    // One call per listener for the round (one outbox append per channel).
    let mut by_listener: Vec<(Arc<dyn SyncListener>, Vec<u64>)> = Vec::new();
    for w in waiters {
        let same =
            |l: &Arc<dyn SyncListener>| std::ptr::addr_eq(Arc::as_ptr(l), Arc::as_ptr(&w.listener));
        match by_listener.iter_mut().find(|(l, _)| same(l)) {
            Some((_, tokens)) => tokens.push(w.token),
            None => by_listener.push((w.listener, vec![w.token])),
        }
    }
    for (listener, tokens) in by_listener {
        listener.synced(&tokens, ok);
    }
}

fn corrupt(dir: &Path, at: &Location) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "corrupt record in {} at offset {}",
            segment_path(dir, at.segment).display(),
            at.offset
        ),
    )
}

fn remove_files(dir: &Path, id: u32) {
    let _ = fs::remove_file(segment_path(dir, id));
    let _ = fs::remove_file(acks_path(dir, id));
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Scans one segment: validates every record, truncates a torn tail, reports
/// and skips corruption, and collects the unsettled references of live queues.
/// Returns how many references it found.
fn recover_segment(
    dir: &Path,
    id: u32,
    live: &dyn Fn(u32) -> bool,
    out: &mut Vec<Recovered>,
) -> io::Result<u64> {
    let path = segment_path(dir, id);
    let data = Bytes::from(fs::read(&path)?);
    let (settled, delivered) = read_acks(dir, id);
    let mut refs = 0;
    let mut offset = 0usize;
    while offset < data.len() {
        let rest = data.slice(offset..);
        match record::read(&rest) {
            Read::Record { len, payload } => {
                match record::decode(payload.clone()) {
                    Some(msg) => {
                        let (priority, expiration) =
                            crate::protocol::content::scan_priority_and_expiration(&msg.raw_header);
                        for &queue in &msg.queues {
                            let key = (offset as u32, queue);
                            if live(queue) && !settled.contains(&key) {
                                refs += 1;
                                out.push(Recovered {
                                    queue,
                                    location: Location {
                                        segment: id,
                                        offset: offset as u32,
                                        len: len as u32,
                                    },
                                    delivered: delivered.contains(&key),
                                    body_len: msg.body.len() as u32,
                                    timestamp: msg.timestamp,
                                    priority,
                                    expiration,
                                });
                            }
                        }
                    }
                    None => error!(file = %path.display(), offset, "undecodable record skipped"),
                }
                offset += len;
            }
            // Too short for what its header claims: a torn tail, unless a valid
            // record follows (then the length itself is corrupt).
            Read::Truncated => match resync(&data, offset + 1) {
                Some(next) => {
                    error!(file = %path.display(), offset, bytes = next - offset, "corrupt data (bad record length): skipped to the next valid record");
                    offset = next;
                }
                None => {
                    truncate(
                        &path,
                        offset,
                        data.len() - offset,
                        "incomplete record at the end",
                    );
                    break;
                }
            },
            Read::Corrupt { len: Some(len) } if offset + len == data.len() => {
                truncate(&path, offset, len, "torn record at the end");
                break;
            }
            Read::Corrupt { len: Some(len) } => {
                error!(file = %path.display(), offset, bytes = len, "corrupt record (checksum mismatch): message dropped");
                offset += len;
            }
            Read::Corrupt { len: None } => match resync(&data, offset + 1) {
                Some(next) => {
                    error!(file = %path.display(), offset, bytes = next - offset, "corrupt data (bad record length): skipped to the next valid record");
                    offset = next;
                }
                None => {
                    truncate(
                        &path,
                        offset,
                        data.len() - offset,
                        "corrupt data up to the end",
                    );
                    break;
                }
            },
        }
    }
    Ok(refs)
}

/// The next offset at or after `from` where a valid record starts.
fn resync(data: &Bytes, from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(RECORD_HEADER)).find(|&p| {
        data.get(p + RECORD_HEADER) == Some(&1)
            && matches!(record::read(&data.slice(p..)), Read::Record { .. })
    })
}

fn truncate(path: &Path, offset: usize, dropped: usize, why: &str) {
    warn!(file = %path.display(), offset, bytes = dropped, "{why}: truncated");
    let result = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(offset as u64));
    if let Err(e) = result {
        error!(file = %path.display(), error = %e, "cannot truncate");
    }
}

/// Reads an ack file: settled and delivered (offset, queue) pairs.
/// (record offset, queue id) pairs read from an ack file.
type RefSet = HashSet<(u32, u32)>;

fn read_acks(dir: &Path, id: u32) -> (RefSet, RefSet) {
    let mut settled = HashSet::new();
    let mut delivered = HashSet::new();
    let data = fs::read(acks_path(dir, id)).unwrap_or_default();
    for entry in data.chunks_exact(8) {
        let offset = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let tag = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        if tag & 1 == 1 {
            delivered.insert((offset, tag >> 1));
        } else {
            settled.insert((offset, tag >> 1));
        }
    }
    (settled, delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Bytes {
        // class 60, weight 0, body size 3, no properties
        Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0])
    }

    #[test]
    fn append_read_settle_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let all = |_| true;
        let (log, rec) = MessageLog::open(dir.path(), &all).unwrap();
        assert!(rec.is_empty());
        let a = log
            .append(vec![1, 2], "x", "k", &header(), &Bytes::from_static(b"abc"))
            .unwrap();
        let b = log
            .append(vec![1], "x", "k", &header(), &Bytes::from_static(b"def"))
            .unwrap();
        assert_eq!(log.read(b).unwrap().body, Bytes::from_static(b"def"));
        log.settle(a, 1);
        log.mark_delivered(b, 1);
        log.shutdown();
        drop(log);
        let (_log, rec) = MessageLog::open(dir.path(), &all).unwrap();
        let got: Vec<(u32, Location, bool)> = rec
            .iter()
            .map(|r| (r.queue, r.location, r.delivered))
            .collect();
        assert_eq!(got, vec![(2, a, false), (1, b, true)]);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let all = |_| true;
        let (log, _) = MessageLog::open(dir.path(), &all).unwrap();
        let a = log
            .append(vec![1], "x", "k", &header(), &Bytes::from_static(b"abc"))
            .unwrap();
        log.shutdown();
        drop(log);
        let path = segment_path(dir.path(), a.segment);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[10, 0, 0, 0, 1, 2]).unwrap();
        let (_log, rec) = MessageLog::open(dir.path(), &all).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), u64::from(a.len));
    }

    #[test]
    fn corruption_in_the_middle_drops_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let all = |_| true;
        let (log, _) = MessageLog::open(dir.path(), &all).unwrap();
        let locs: Vec<Location> = (0..3)
            .map(|_| {
                log.append(vec![1], "x", "k", &header(), &Bytes::from_static(b"abc"))
                    .unwrap()
            })
            .collect();
        log.shutdown();
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        data[locs[1].offset as usize + 20] ^= 0x01;
        fs::write(&path, &data).unwrap();
        let (_log, rec) = MessageLog::open(dir.path(), &all).unwrap();
        let got: Vec<Location> = rec.iter().map(|r| r.location).collect();
        assert_eq!(got, vec![locs[0], locs[2]]);
        // A bad length is resynchronised past, too.
        data[locs[1].offset as usize + 20] ^= 0x01;
        data[locs[1].offset as usize + 2] = 0x7f;
        fs::write(&path, &data).unwrap();
        let (_log, rec) = MessageLog::open(dir.path(), &all).unwrap();
        let got: Vec<Location> = rec.iter().map(|r| r.location).collect();
        assert_eq!(got, vec![locs[0], locs[2]]);
    }

    #[test]
    fn settled_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let all = |_| true;
        let (log, _) = MessageLog::open(dir.path(), &all).unwrap();
        let body = Bytes::from(vec![0u8; 1 << 20]);
        let locs: Vec<Location> = (0..20)
            .map(|_| log.append(vec![1], "x", "k", &header(), &body).unwrap())
            .collect();
        let before = log.disk_usage();
        assert!(before > 19 << 20);
        for at in locs {
            log.settle(at, 1);
        }
        log.shutdown();
        assert!(log.disk_usage() < 9 << 20, "{}", log.disk_usage());
    }
}
