//! Measures the two candidate payload stores on this machine, so the choice in
//! docs/ARCHITECTURE.md rests on numbers: sled (one key per message, removed on
//! ack) against an append-only segment file with an ack log (what Warren uses).
//!
//! Each writes N messages of SIZE bytes, durably (an fsync/flush every BATCH
//! messages, as group commit would), then "acks" them all.
//!
//! cargo run --release --example store_choice -- [N] [SIZE] [BATCH]

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let size = args.get(1).copied().unwrap_or(1024);
    let batch = args.get(2).copied().unwrap_or(100);
    let body = vec![0x5au8; size];
    let dir = tempfile::tempdir()?;

    // sled: insert with a u64 key, flush per batch; ack = remove.
    let db = sled::open(dir.path().join("sled"))?;
    let start = Instant::now();
    for i in 0..n as u64 {
        db.insert(i.to_be_bytes(), body.as_slice())?;
        if (i + 1) % batch as u64 == 0 {
            db.flush()?;
        }
    }
    db.flush()?;
    let sled_write = start.elapsed();
    let start = Instant::now();
    for i in 0..n as u64 {
        db.remove(i.to_be_bytes())?;
    }
    db.flush()?;
    let sled_ack = start.elapsed();
    let sled_disk = dir_size(&dir.path().join("sled"));

    // Segment log: length + CRC framed records appended, fdatasync per batch;
    // ack = an 8-byte entry appended to the ack file, no fsync.
    let seg_path = dir.path().join("msgs.0000000001");
    let mut seg = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&seg_path)?;
    let mut acks = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("acks.0000000001"))?;
    let start = Instant::now();
    let mut record = Vec::with_capacity(size + 64);
    let mut offset = 0u32;
    let mut offsets = Vec::with_capacity(n);
    for i in 0..n {
        record.clear();
        record.extend_from_slice(&((size + 8) as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        record.extend_from_slice(&(i as u64).to_le_bytes());
        record.extend_from_slice(&body);
        seg.write_all(&record)?;
        offsets.push(offset);
        offset += record.len() as u32;
        if (i + 1) % batch == 0 {
            seg.sync_data()?;
        }
    }
    seg.sync_data()?;
    let log_write = start.elapsed();
    let start = Instant::now();
    let mut entries = Vec::with_capacity(8 * 1024);
    for o in offsets {
        entries.extend_from_slice(&o.to_le_bytes());
        entries.extend_from_slice(&2u32.to_le_bytes());
        if entries.len() >= 8 * 1024 {
            acks.write_all(&entries)?;
            entries.clear();
        }
    }
    acks.write_all(&entries)?;
    let log_ack = start.elapsed();
    let log_disk = dir_size(dir.path()) - dir_size(&dir.path().join("sled"));

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("{n} messages of {size} B, durable every {batch}:");
    println!(
        "  sled:        write {:>9.0} msg/s, ack {:>9.0} msg/s, disk after acking all {:>6.1} MiB",
        rate(sled_write),
        rate(sled_ack),
        sled_disk as f64 / 1048576.0
    );
    println!(
        "  segment log: write {:>9.0} msg/s, ack {:>9.0} msg/s, disk before segment deletion {:>6.1} MiB",
        rate(log_write),
        rate(log_ack),
        log_disk as f64 / 1048576.0
    );
    Ok(())
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let m = e.metadata().ok();
            match m {
                Some(m) if m.is_dir() => dir_size(&e.path()),
                Some(m) => m.len(),
                None => 0,
            }
        })
        .sum()
}
