//! `cairn audit export DIR`: the log as static files in the C2SP tlog-tiles
//! layout, so that transparency-log clients and witnesses read it without
//! Cairn, the database or the broker:
//!
//! * `checkpoint`: the newest signed (cosigned, when a witness runs) checkpoint;
//! * `tile/<L>/<N>[.p/<W>]`: hash tiles of height 8 (256 hashes of level
//!   `8·L`), the last of each level partial;
//! * `tile/entries/<N>[.p/<W>]`: entry bundles, 256 entries each, every entry
//!   as a big-endian uint16 length and its exact bytes.
//!
//! `<N>` is written in groups of three digits (`x001/234`). Tile arithmetic
//! is `tlog_tiles`'; only the C2SP path and bundle encoding are here.

use cairn_ledger::prove::{checkpoint_for, ProveError};
use cairn_ledger::tree::{self, TreeError};
use cairn_tlog::reader::Known;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tlog_tiles::tile::Tile;
use tokio_postgres::Client;

/// Tile height of the C2SP tlog-tiles layout.
pub const TILE_HEIGHT: u8 = 8;
const PER_BUNDLE: u64 = 1 << TILE_HEIGHT;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Prove(#[from] ProveError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("{path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("entry {0} is larger than 65535 bytes: an entry bundle cannot hold it")]
    TooLarge(u64),
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub size: u64,
    pub hash_tiles: usize,
    pub entry_bundles: usize,
}

/// The C2SP path of a tile (hash tile, or entry bundle when `is_data`).
pub fn tile_path(tile: &Tile) -> String {
    // tlog_tiles writes Go sumdb paths: `tile/<H>/<L or data>/<N>[.p/<W>]`.
    let go = tile.path();
    let rest = go
        .strip_prefix(&format!("tile/{TILE_HEIGHT}/"))
        .unwrap_or(&go);
    match rest.strip_prefix("data/") {
        Some(n) => format!("tile/entries/{n}"),
        None => format!("tile/{rest}"),
    }
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), ExportError> {
    let path = dir.join(rel);
    let err = |e: std::io::Error| ExportError::Write {
        path: path.clone(),
        detail: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(&path, bytes).map_err(err)
}

/// Writes the log, up to the newest (cosigned) checkpoint, under `dir`.
pub async fn export(
    pg: &Client,
    dir: &Path,
    cosigned: &BTreeMap<u64, Vec<u8>>,
) -> Result<Exported, ExportError> {
    let (size, note) = checkpoint_for(pg, 1, cosigned).await?;
    let mut known = Known::new();
    let tiles = Tile::new_tiles(TILE_HEIGHT, 0, size);
    for tile in &tiles {
        let data = tree::compute(pg, &mut known, |r| tile.read_data(r)).await?;
        write(dir, &tile_path(tile), &data)?;
    }
    let bundles = size.div_ceil(PER_BUNDLE);
    for n in 0..bundles {
        let first = n * PER_BUNDLE + 1;
        let last = ((n + 1) * PER_BUNDLE).min(size);
        let rows = pg
            .query(
                "SELECT seq, entry FROM ledger_entries WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
                &[&(first as i64), &(last as i64)],
            )
            .await?;
        let mut bundle = Vec::new();
        for r in &rows {
            let entry: Vec<u8> = r.get(1);
            let len = u16::try_from(entry.len())
                .map_err(|_| ExportError::TooLarge(r.get::<_, i64>(0) as u64))?;
            bundle.extend_from_slice(&len.to_be_bytes());
            bundle.extend_from_slice(&entry);
        }
        let width = (last + 1 - first) as u32;
        write(
            dir,
            &tile_path(&Tile::new(TILE_HEIGHT, 0, n, width, true)),
            &bundle,
        )?;
    }
    write(dir, "checkpoint", &note)?;
    Ok(Exported {
        size,
        hash_tiles: tiles.len(),
        entry_bundles: bundles as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_c2sp_tlog_tiles() {
        assert_eq!(
            tile_path(&Tile::new(8, 0, 1_234_067, 256, false)),
            "tile/0/x001/x234/067"
        );
        assert_eq!(tile_path(&Tile::new(8, 1, 5, 3, false)), "tile/1/005.p/3");
        assert_eq!(
            tile_path(&Tile::new(8, 0, 0, 256, true)),
            "tile/entries/000"
        );
        assert_eq!(
            tile_path(&Tile::new(8, 0, 1000, 7, true)),
            "tile/entries/x001/000.p/7"
        );
    }
}
