//! The snapshot file format, its builder, its verifying reader, and its chunked transfer.
//!
//! A file is the concatenation of one section per data column family, in the order of the
//! descriptor's `meta.cf_files`. A section is a sequence of records
//! `key_len: u32 BE | key | value_len: u32 BE | value` with user keys (no data prefix) in key
//! order. The descriptor records each section's byte size and CRC32, and the file size.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message as _;
use proto::raft_serverpb::{RaftSnapshotData, SnapshotCfFile};

use super::manager::SnapGuard;
use crate::engine::is_data_cf;
use crate::errors::{Error, Result};

/// Version written to `RaftSnapshotData.version`; a descriptor with another version is refused.
pub const SNAPSHOT_FORMAT_VERSION: u64 = 1;

/// Largest key or value a record may declare. Guards against allocating on a corrupted length.
const MAX_FIELD_LEN: u32 = 512 << 20;

fn corrupted(msg: impl Into<String>) -> Error {
    Error::CorruptedSnapshot(msg.into())
}

/// Decodes and sanity-checks the descriptor carried in `eraftpb::Snapshot.data`.
pub fn decode_descriptor(data: &[u8]) -> Result<RaftSnapshotData> {
    let desc = RaftSnapshotData::decode(data)?;
    if desc.version != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupted(format!(
            "unsupported snapshot format version {}",
            desc.version
        )));
    }
    if desc.region.is_none() {
        return Err(corrupted("descriptor has no region"));
    }
    let meta = desc
        .meta
        .as_ref()
        .ok_or_else(|| corrupted("descriptor has no meta"))?;
    let mut total = 0u64;
    for (i, f) in meta.cf_files.iter().enumerate() {
        if !is_data_cf(&f.cf) {
            return Err(corrupted(format!("unknown column family {:?}", f.cf)));
        }
        if meta.cf_files[..i].iter().any(|g| g.cf == f.cf) {
            return Err(corrupted(format!("column family {:?} listed twice", f.cf)));
        }
        total = total
            .checked_add(f.size)
            .ok_or_else(|| corrupted("section sizes overflow"))?;
    }
    if total != desc.file_size {
        return Err(corrupted(format!(
            "sections add up to {total} bytes, descriptor says {}",
            desc.file_size
        )));
    }
    Ok(desc)
}

fn cf_files(desc: &RaftSnapshotData) -> &[SnapshotCfFile] {
    // `decode_descriptor` guarantees meta is present; an absent one describes an empty file.
    desc.meta
        .as_ref()
        .map(|m| m.cf_files.as_slice())
        .unwrap_or(&[])
}

fn publish(file: BufWriter<File>, tmp: &Path, dst: &Path) -> Result<()> {
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(tmp, dst)?;
    // Make the rename itself durable.
    if let Some(dir) = dst.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a snapshot file section by section into a temporary file, published by `finish`.
/// Dropping an unfinished builder deletes the temporary file.
pub(crate) struct SnapFileBuilder {
    tmp: PathBuf,
    dst: PathBuf,
    file: Option<BufWriter<File>>,
    sections: Vec<SnapshotCfFile>,
    hasher: crc32fast::Hasher,
    size: u64,
    in_section: bool,
}

impl SnapFileBuilder {
    pub(crate) fn create(tmp: PathBuf, dst: PathBuf) -> Result<SnapFileBuilder> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        Ok(SnapFileBuilder {
            tmp,
            dst,
            file: Some(BufWriter::with_capacity(256 << 10, file)),
            sections: vec![],
            hasher: crc32fast::Hasher::new(),
            size: 0,
            in_section: false,
        })
    }

    pub(crate) fn begin_cf(&mut self, cf: &str) {
        assert!(!self.in_section, "begin_cf({cf}) inside a section");
        self.sections.push(SnapshotCfFile {
            cf: cf.to_owned(),
            size: 0,
            checksum: 0,
        });
        self.hasher = crc32fast::Hasher::new();
        self.size = 0;
        self.in_section = true;
    }

    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        assert!(self.in_section, "add outside a section");
        let file = self.file.as_mut().expect("builder already finished");
        for field in [key, value] {
            let len = u32::try_from(field.len())
                .ok()
                .filter(|l| *l <= MAX_FIELD_LEN)
                .ok_or_else(|| Error::Other(format!("snapshot field of {} bytes", field.len())))?;
            let len = len.to_be_bytes();
            file.write_all(&len)?;
            file.write_all(field)?;
            self.hasher.update(&len);
            self.hasher.update(field);
            self.size += 4 + field.len() as u64;
        }
        Ok(())
    }

    pub(crate) fn end_cf(&mut self) {
        assert!(self.in_section, "end_cf outside a section");
        let section = self.sections.last_mut().expect("in a section");
        section.size = self.size;
        section.checksum = std::mem::take(&mut self.hasher).finalize();
        self.in_section = false;
    }

    /// Syncs and publishes the file; returns its size and its sections.
    pub(crate) fn finish(mut self) -> Result<(u64, Vec<SnapshotCfFile>)> {
        assert!(!self.in_section, "finish inside a section");
        let file = self.file.take().expect("builder already finished");
        publish(file, &self.tmp, &self.dst)?;
        let sections = std::mem::take(&mut self.sections);
        Ok((sections.iter().map(|s| s.size).sum(), sections))
    }
}

impl Drop for SnapFileBuilder {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Reads every record of the snapshot file at `path`, verifying each section's size and checksum
/// before the next one is read, and calls `f(cf, user_key, value)` for each record in order.
///
/// `f` sees the records of a section before that section's checksum is checked; callers that
/// must not act on unverified data run this twice (verify with a no-op `f`, then act).
pub fn for_each_record<F>(path: &Path, desc: &RaftSnapshotData, mut f: F) -> Result<()>
where
    F: FnMut(&str, &[u8], &[u8]) -> Result<()>,
{
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::SnapshotNotFound(path.display().to_string()),
        _ => Error::Io(e),
    })?;
    let len = file.metadata()?.len();
    if len != desc.file_size {
        return Err(corrupted(format!(
            "{} is {len} bytes, descriptor says {}",
            path.display(),
            desc.file_size
        )));
    }
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    for section in cf_files(desc) {
        let mut left = section.size;
        let mut hasher = crc32fast::Hasher::new();
        while left > 0 {
            read_field(&mut reader, &mut left, &mut hasher, &mut key)?;
            read_field(&mut reader, &mut left, &mut hasher, &mut value)?;
            f(&section.cf, &key, &value)?;
        }
        let crc = hasher.finalize();
        if crc != section.checksum {
            return Err(corrupted(format!(
                "checksum of column family {} is {crc:#x}, expected {:#x}",
                section.cf, section.checksum
            )));
        }
    }
    Ok(())
}

fn read_field<R: Read>(
    r: &mut R,
    left: &mut u64,
    hasher: &mut crc32fast::Hasher,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut len = [0u8; 4];
    if *left < 4 {
        return Err(corrupted("truncated record length"));
    }
    r.read_exact(&mut len)?;
    hasher.update(&len);
    *left -= 4;
    let n = u32::from_be_bytes(len);
    if n > MAX_FIELD_LEN || u64::from(n) > *left {
        return Err(corrupted(format!(
            "record field of {n} bytes overruns its section"
        )));
    }
    buf.resize(n as usize, 0);
    r.read_exact(buf)?;
    hasher.update(buf);
    *left -= u64::from(n);
    Ok(())
}

/// Reads a published snapshot file in chunks, for sending it over a stream. Holds a registration
/// so cleanup leaves the file alone while it is being sent.
pub struct SnapChunkReader {
    file: File,
    remaining: u64,
    total: u64,
    chunk_size: usize,
    _guard: SnapGuard,
}

impl SnapChunkReader {
    pub(crate) fn open(
        path: &Path,
        chunk_size: usize,
        guard: SnapGuard,
    ) -> Result<SnapChunkReader> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::SnapshotNotFound(path.display().to_string()),
            _ => Error::Io(e),
        })?;
        let total = file.metadata()?.len();
        Ok(SnapChunkReader {
            file,
            remaining: total,
            total,
            chunk_size: chunk_size.max(1),
            _guard: guard,
        })
    }

    /// Size of the whole file in bytes.
    pub fn total_size(&self) -> u64 {
        self.total
    }

    /// The next chunk (at most the configured chunk size), or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let n = self.remaining.min(self.chunk_size as u64) as usize;
        let mut buf = vec![0u8; n];
        self.file.read_exact(&mut buf)?;
        self.remaining -= n as u64;
        Ok(Some(buf))
    }
}

impl Iterator for SnapChunkReader {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        self.next_chunk().transpose()
    }
}

/// Rebuilds a snapshot file from chunks of any size, verifying each column family section's
/// checksum as soon as its last byte arrives. `finish` publishes the file only if every section
/// matched and the size is exact; any error (or dropping the writer) deletes the partial file.
pub struct SnapChunkWriter {
    tmp: PathBuf,
    dst: PathBuf,
    file: Option<BufWriter<File>>,
    sections: Vec<SnapshotCfFile>,
    /// Index of the section the next byte belongs to.
    section: usize,
    /// Bytes of the current section received so far.
    section_written: u64,
    hasher: crc32fast::Hasher,
    written: u64,
    total: u64,
    _guard: SnapGuard,
}

impl SnapChunkWriter {
    pub(crate) fn create(
        tmp: PathBuf,
        dst: PathBuf,
        desc: &RaftSnapshotData,
        guard: SnapGuard,
    ) -> Result<SnapChunkWriter> {
        let sections = cf_files(desc).to_vec();
        if sections.iter().map(|s| s.size).sum::<u64>() != desc.file_size {
            return Err(corrupted(
                "descriptor sections do not add up to the file size",
            ));
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = SnapChunkWriter {
            tmp,
            dst,
            file: Some(BufWriter::with_capacity(256 << 10, file)),
            sections,
            section: 0,
            section_written: 0,
            hasher: crc32fast::Hasher::new(),
            written: 0,
            total: desc.file_size,
            _guard: guard,
        };
        // Leading empty sections are complete before any byte arrives.
        w.close_complete_sections()?;
        Ok(w)
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends the next chunk.
    pub fn write_chunk(&mut self, mut data: &[u8]) -> Result<()> {
        if self.written + data.len() as u64 > self.total {
            return Err(corrupted(format!(
                "received more than the {} bytes the descriptor announced",
                self.total
            )));
        }
        let file = self.file.as_mut().expect("writer already finished");
        file.write_all(data)?;
        self.written += data.len() as u64;
        while !data.is_empty() {
            let left = self.sections[self.section].size - self.section_written;
            let n = (left as usize).min(data.len());
            self.hasher.update(&data[..n]);
            self.section_written += n as u64;
            data = &data[n..];
            self.close_complete_sections()?;
        }
        Ok(())
    }

    fn close_complete_sections(&mut self) -> Result<()> {
        while let Some(s) = self.sections.get(self.section) {
            if self.section_written < s.size {
                break;
            }
            let crc = std::mem::take(&mut self.hasher).finalize();
            if crc != s.checksum {
                return Err(corrupted(format!(
                    "checksum of column family {} is {crc:#x}, expected {:#x}",
                    s.cf, s.checksum
                )));
            }
            self.section += 1;
            self.section_written = 0;
        }
        Ok(())
    }

    /// Checks the file is complete, syncs it and publishes it under its final name.
    pub fn finish(mut self) -> Result<()> {
        if self.written != self.total || self.section != self.sections.len() {
            return Err(corrupted(format!(
                "snapshot ended after {} of {} bytes",
                self.written, self.total
            )));
        }
        let file = self.file.take().expect("writer already finished");
        publish(file, &self.tmp, &self.dst)
    }
}

impl Drop for SnapChunkWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
