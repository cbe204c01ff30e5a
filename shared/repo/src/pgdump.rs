//! Where each table's data sits in a `pg_dump --format=custom` stream, so
//! that a restore of one table (or schema) fetches only its part of the
//! dump. Ingest passes the stream through a [`Scanner`] as it reads it; the
//! resulting [`DumpIndex`] (the table of contents and each data block's
//! byte range) goes into the sealed manifest. A restore then reads the
//! header and table of contents, and the selected blocks alone, and hands
//! them to `pg_restore`, which finds the blocks it is asked for in order.
//!
//! The layout read here is pg_dump's archive format 1.12 to 1.15
//! (PostgreSQL 11 to 16): a header, the table of contents, then one block
//! per data-bearing entry (`BLK_DATA`: its dump id, then length-prefixed
//! pieces ending with a zero length; `BLK_BLOBS`: per large object its oid
//! and pieces, ending with oid 0). A stream it cannot read is not an error:
//! the backup is whole either way, and a selective restore then reads the
//! whole dump.

use serde::{Deserialize, Serialize};

/// One table-of-contents entry that has a data block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpEntry {
    pub dump_id: u32,
    /// `TABLE DATA`, `BLOBS`, `SEQUENCE SET`…
    pub desc: String,
    pub namespace: String,
    pub tag: String,
    /// Byte range of its block in the dump: offset and length.
    pub block: (u64, u64),
}

/// A dump's table of contents and where its blocks are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpIndex {
    /// Bytes of header and table of contents: what comes before the first block.
    pub header_len: u64,
    pub entries: Vec<DumpEntry>,
}

impl DumpIndex {
    /// The entries a `pg_restore --table`/`--schema` selection reads data
    /// from: table data of the named tables (in any schema, as
    /// `pg_restore --table` matches) and of every table in the named schemas.
    pub fn selected(&self, tables: &[String], schemas: &[String]) -> Vec<&DumpEntry> {
        self.entries
            .iter()
            .filter(|e| e.desc == "TABLE DATA")
            .filter(|e| {
                let in_schema = schemas.is_empty() || schemas.contains(&e.namespace);
                let named = tables.is_empty() || tables.contains(&e.tag);
                in_schema && named
            })
            .collect()
    }
}

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;

/// What a scan is waiting for.
#[derive(Debug)]
enum State {
    /// Gathering the header and table of contents (parsed as they grow).
    Toc,
    /// A block's type byte and dump id.
    BlockHeader,
    /// A piece's length within a data block (or, in a blobs block, after a
    /// blob's pieces end, the next blob's oid).
    PieceLen { blobs: bool },
    /// A blob's oid in a blobs block.
    BlobOid,
    /// Bytes of a piece still to pass.
    Skip { left: u64, blobs: bool },
    /// Past the last block, or unreadable: nothing more is learnt.
    Done,
}

/// Reads a custom-format dump as it streams past.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    /// Bytes consumed so far (the stream offset of `pending`'s start).
    at: u64,
    pending: Vec<u8>,
    /// When the table of contents was last tried, to try again only once
    /// the gathered bytes have doubled.
    tried_at: usize,
    int_size: usize,
    toc: Vec<(u32, String, String, String)>,
    header_len: u64,
    block: Option<(u32, u64)>,
    entries: Vec<DumpEntry>,
    failed: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Toc,
            at: 0,
            pending: Vec::new(),
            tried_at: 0,
            int_size: 4,
            toc: Vec::new(),
            header_len: 0,
            block: None,
            entries: Vec::new(),
            failed: false,
        }
    }
}

/// Reads a dump's integers and strings from a byte slice.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    int_size: usize,
}

/// The slice ended before the item did.
struct Short;

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Short> {
        let v = *self.b.get(self.i).ok_or(Short)?;
        self.i += 1;
        Ok(v)
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], Short> {
        let v = self.b.get(self.i..self.i + n).ok_or(Short)?;
        self.i += n;
        Ok(v)
    }
    /// A sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, Short> {
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for (k, b) in self.bytes(self.int_size)?.iter().enumerate() {
            if k < 8 {
                v |= (*b as i64) << (8 * k);
            }
        }
        Ok(if sign != 0 { -v } else { v })
    }
    fn string(&mut self) -> Result<Option<String>, Short> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.bytes(len as usize)?).into_owned(),
        ))
    }
}

/// Why a header could not be read (the scan then gives up).
enum Bad {
    Short,
    Unreadable,
}

impl From<Short> for Bad {
    fn from(_: Short) -> Self {
        Bad::Short
    }
}

/// The table of contents in `b`, if `b` holds all of it: its entries
/// (dump id, desc, namespace, tag), the header's length and the integer size.
#[allow(clippy::type_complexity)]
fn parse_toc(b: &[u8]) -> Result<(Vec<(u32, String, String, String)>, usize, usize), Bad> {
    if b.len() >= 5 && &b[..5] != b"PGDMP" {
        return Err(Bad::Unreadable);
    }
    let mut c = Cursor {
        b,
        i: 5,
        int_size: 4,
    };
    let (vmaj, vmin) = (c.byte()?, c.byte()?);
    let _vrev = c.byte()?;
    let version = (vmaj, vmin);
    if !((1, 12)..=(1, 15)).contains(&version) {
        return Err(Bad::Unreadable);
    }
    c.int_size = c.byte()? as usize;
    let off_size = c.byte()? as usize;
    let format = c.byte()?;
    if format != 1 || !(1..=8).contains(&c.int_size) || !(1..=8).contains(&off_size) {
        return Err(Bad::Unreadable);
    }
    if version >= (1, 15) {
        c.byte()?; // compression algorithm
    } else {
        c.int()?; // compression level
    }
    for _ in 0..7 {
        c.int()?; // the dump's time
    }
    for _ in 0..3 {
        c.string()?; // database name, server and pg_dump versions
    }
    let count = c.int()?;
    if count < 0 {
        return Err(Bad::Unreadable);
    }
    let mut toc = Vec::new();
    for _ in 0..count {
        let dump_id = c.int()?;
        let had_dumper = c.int()?;
        c.string()?; // table oid
        c.string()?; // oid
        let tag = c.string()?.unwrap_or_default();
        let desc = c.string()?.unwrap_or_default();
        c.int()?; // section
        c.string()?; // definition
        c.string()?; // drop statement
        c.string()?; // copy statement
        let namespace = c.string()?.unwrap_or_default();
        c.string()?; // tablespace
        if version >= (1, 14) {
            c.string()?; // table access method
        }
        c.string()?; // owner
        c.string()?; // "false" (with oids)
        while c.string()?.is_some() {} // dependencies, ending with a null
        c.byte()?; // data offset's flag
        c.bytes(off_size)?;
        if had_dumper != 0 {
            let id = u32::try_from(dump_id).map_err(|_| Bad::Unreadable)?;
            toc.push((id, desc, namespace, tag));
        }
    }
    Ok((toc, c.i, c.int_size))
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Toc => {
                    self.pending.extend_from_slice(data);
                    data = &[];
                    if self.pending.len() < 2 * self.tried_at.max(4096) {
                        continue;
                    }
                    self.try_toc();
                }
                State::Skip { left, blobs } => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    self.at += n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        let blobs = *blobs;
                        self.state = State::PieceLen { blobs };
                    }
                }
                _ => {
                    // A fixed-size item: gather it whole, then act on it.
                    let need = match self.state {
                        State::BlockHeader => 2 + self.int_size,
                        _ => 1 + self.int_size,
                    };
                    let take = (need - self.pending.len()).min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.pending.len() == need {
                        self.item();
                    }
                }
            }
        }
    }

    fn try_toc(&mut self) {
        self.tried_at = self.pending.len();
        match parse_toc(&self.pending) {
            Ok((toc, len, int_size)) => {
                self.toc = toc;
                self.int_size = int_size;
                self.header_len = len as u64;
                self.at = len as u64;
                let rest = self.pending.split_off(len);
                self.pending.clear();
                self.state = State::BlockHeader;
                self.feed(&rest);
            }
            Err(Bad::Short) => {}
            Err(Bad::Unreadable) => self.give_up(),
        }
    }

    fn give_up(&mut self) {
        self.failed = true;
        self.state = State::Done;
        self.pending = Vec::new();
    }

    fn int_of(&self, b: &[u8]) -> i64 {
        let mut c = Cursor {
            b,
            i: 0,
            int_size: self.int_size,
        };
        c.int().unwrap_or(-1)
    }

    /// Acts on the fixed-size item gathered in `pending`.
    fn item(&mut self) {
        let item = std::mem::take(&mut self.pending);
        let start = self.at;
        self.at += item.len() as u64;
        match self.state {
            State::BlockHeader => {
                let kind = item[0];
                let id = self.int_of(&item[1..]);
                let Ok(id) = u32::try_from(id) else {
                    return self.give_up();
                };
                self.block = Some((id, start));
                self.state = match kind {
                    BLK_DATA => State::PieceLen { blobs: false },
                    BLK_BLOBS => State::BlobOid,
                    _ => return self.give_up(),
                };
            }
            State::BlobOid => {
                if self.int_of(&item) == 0 {
                    self.end_block();
                } else {
                    self.state = State::PieceLen { blobs: true };
                }
            }
            State::PieceLen { blobs } => match self.int_of(&item) {
                0 if blobs => self.state = State::BlobOid,
                0 => self.end_block(),
                n if n > 0 => {
                    self.state = State::Skip {
                        left: n as u64,
                        blobs,
                    }
                }
                _ => self.give_up(),
            },
            _ => {}
        }
    }

    fn end_block(&mut self) {
        if let Some((id, start)) = self.block.take() {
            match self.toc.iter().find(|(d, ..)| *d == id) {
                Some((_, desc, namespace, tag)) => self.entries.push(DumpEntry {
                    dump_id: id,
                    desc: desc.clone(),
                    namespace: namespace.clone(),
                    tag: tag.clone(),
                    block: (start, self.at - start),
                }),
                None => return self.give_up(),
            }
        }
        self.state = State::BlockHeader;
    }

    /// The index, once the stream has ended; none if it could not be read
    /// (or ended inside a block).
    pub fn finish(mut self) -> Option<DumpIndex> {
        if matches!(self.state, State::Toc) {
            self.try_toc();
        }
        let whole = matches!(self.state, State::BlockHeader) && self.pending.is_empty();
        (!self.failed && whole).then_some(DumpIndex {
            header_len: self.header_len,
            entries: self.entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_dump -Fc -Z0` (PostgreSQL 15, format 1.14) of a database with
    /// `public.accounts` (300 rows), `public.empty`, `sales.orders` (200
    /// rows), a sequence and a large object.
    const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/fixture.pgdump");

    fn scan(pieces: usize) -> DumpIndex {
        let mut s = Scanner::new();
        let step = FIXTURE.len().div_ceil(pieces);
        for part in FIXTURE.chunks(step.max(1)) {
            s.feed(part);
        }
        s.finish().expect("the fixture is readable")
    }

    #[test]
    fn every_data_block_is_found_whatever_the_read_sizes() {
        let whole = scan(1);
        for pieces in [2, 7, 100, FIXTURE.len()] {
            assert_eq!(scan(pieces), whole, "{pieces} pieces");
        }
        let names: Vec<(&str, &str, &str)> = whole
            .entries
            .iter()
            .map(|e| (e.desc.as_str(), e.namespace.as_str(), e.tag.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("TABLE DATA", "public", "accounts"),
                ("TABLE DATA", "public", "empty"),
                ("TABLE DATA", "sales", "orders"),
                ("BLOBS", "", "BLOBS"),
            ]
        );
        // The blocks follow the header, one after another, to the end.
        let mut at = whole.header_len;
        for e in &whole.entries {
            assert_eq!(e.block.0, at, "{e:?}");
            assert_eq!(FIXTURE[at as usize], if e.desc == "BLOBS" { 3 } else { 1 });
            at += e.block.1;
        }
        assert_eq!(at, FIXTURE.len() as u64);
        let accounts = &whole.entries[0];
        let block =
            &FIXTURE[accounts.block.0 as usize..(accounts.block.0 + accounts.block.1) as usize];
        let text = String::from_utf8_lossy(block);
        assert!(text.contains("owner 300") && !text.contains("owner 301"));
    }

    #[test]
    fn a_selection_names_table_data_by_table_and_schema() {
        let i = scan(1);
        let ids = |t: &[&str], s: &[&str]| {
            let t: Vec<String> = t.iter().map(|x| x.to_string()).collect();
            let s: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            i.selected(&t, &s)
                .iter()
                .map(|e| e.tag.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&["orders"], &[]), vec!["orders"]);
        assert_eq!(ids(&[], &["public"]), vec!["accounts", "empty"]);
        assert_eq!(ids(&["orders"], &["public"]), Vec::<String>::new());
    }

    #[test]
    fn what_is_not_a_readable_dump_gives_no_index() {
        let mut s = Scanner::new();
        s.feed(b"-- plain SQL, not a custom-format dump\n");
        assert!(s.finish().is_none());
        let mut s = Scanner::new();
        s.feed(&FIXTURE[..FIXTURE.len() - 3]);
        assert!(s.finish().is_none(), "a dump cut inside a block");
        let mut s = Scanner::new();
        s.feed(&FIXTURE[..200]);
        assert!(
            s.finish().is_none(),
            "a dump cut inside its table of contents"
        );
    }
}
