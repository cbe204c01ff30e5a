//! Where each object lives on a network. The one place that maps names to
//! paths, so that every stage and every later tool agrees.
//!
//! ```text
//! config                         repository config (JSON, public)
//! keys/<key_id>                  key files (JSON; useless without a passphrase)
//! keys-removed/<key_id>          tombstones of removed key files
//! rotation                       an unfinished key rotation (tagged by the new master key)
//! chunks/<id[0..2]>/<id>         sealed chunks stored alone (format 1)
//! packs/<id[0..2]>/<id>          packs: sealed chunks one after another (format 2;
//!                                from format 3 every chunk is in a pack)
//! datakeys/<key_id>              a backup's data key, wrapped to the repository's
//!                                public key (format 3) or its dataset's (format 4)
//! datasets/<fingerprint>         a dataset's key pair, the private key wrapped to
//!                                the repository's public key (format 4)
//! backups/<backup_id>/manifest   sealed manifest
//! backups/<backup_id>/chunks.<n> public chunk-list pages
//! backups/<backup_id>/catalogue  sealed catalogue entry (what `cairn recover list` shows)
//! ```

use cairn_events::{BackupId, KeyId, ObjectKey, PackId};

pub const CONFIG: &str = "config";
/// Where a PostgreSQL base backup's data directory sits in its tree.
pub const PGDATA: &str = "pgdata";
/// An unfinished key rotation's record (see `keys::Repository::rotate`).
pub const ROTATION: &str = "rotation";
pub const KEYS_DIR: &str = "keys/";
/// A removed key's tombstone: no network may hold or spread it again.
pub const KEYS_REMOVED_DIR: &str = "keys-removed/";
pub const BACKUPS_DIR: &str = "backups/";
pub const CHUNKS_DIR: &str = "chunks/";
pub const PACKS_DIR: &str = "packs/";
pub const DATA_KEYS_DIR: &str = "datakeys/";
pub const DATASETS_DIR: &str = "datasets/";
/// Signed checkpoints of the audit ledger (public: a size and a root), one
/// per size, so that a copy outside the database witnesses the log.
pub const CHECKPOINTS_DIR: &str = "checkpoints/";

/// Where a log's signed checkpoints go: the repository's first log's under
/// `checkpoints/`; a log begun by `cairn recover rebuild` (`log`: its id,
/// from its first entry) under `checkpoints/<log>/`, so that the lost log's
/// checkpoints stay as they were and are not taken for the new log's.
pub fn checkpoints_dir(log: Option<&str>) -> String {
    match log {
        None => CHECKPOINTS_DIR.to_string(),
        Some(l) => format!("{CHECKPOINTS_DIR}{l}/"),
    }
}

pub fn checkpoint(log: Option<&str>, size: u64) -> String {
    format!("{}{size:020}", checkpoints_dir(log))
}

/// Whether `path` is a checkpoint of log `log` (not of another log).
pub fn is_checkpoint_of(log: Option<&str>, path: &str) -> bool {
    path.strip_prefix(&checkpoints_dir(log))
        .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit()))
}

pub fn key_file(key_id: &str) -> String {
    format!("{KEYS_DIR}{key_id}")
}

pub fn key_removed(key_id: &str) -> String {
    format!("{KEYS_REMOVED_DIR}{key_id}")
}

pub fn object(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Chunk { id } => {
            let hex = id.to_hex();
            format!("chunks/{}/{}", &hex[..2], hex)
        }
        ObjectKey::Pack { id } => {
            let hex = id.to_hex();
            format!("packs/{}/{}", &hex[..2], hex)
        }
        ObjectKey::Manifest { backup_id } => format!("backups/{backup_id}/manifest"),
        ObjectKey::ChunkList { backup_id, page } => format!("backups/{backup_id}/chunks.{page}"),
        ObjectKey::DataKey { id } => format!("{DATA_KEYS_DIR}{id}"),
        ObjectKey::Catalogue { backup_id } => format!("backups/{backup_id}/catalogue"),
        ObjectKey::DatasetKey { id } => format!("{DATASETS_DIR}{id}"),
    }
}

pub fn backup_dir(backup_id: &BackupId) -> String {
    format!("backups/{backup_id}/")
}

/// The backup id of a path under `backups/`, if it is a manifest.
pub fn manifest_backup(path: &str) -> Option<BackupId> {
    let rest = path.strip_prefix(BACKUPS_DIR)?;
    let (id, file) = rest.split_once('/')?;
    (file == "manifest")
        .then(|| BackupId::parse(id).ok())
        .flatten()
}

/// The backup id of a path under `backups/`, if it is a catalogue entry.
pub fn catalogue_backup(path: &str) -> Option<BackupId> {
    let rest = path.strip_prefix(BACKUPS_DIR)?;
    let (id, file) = rest.split_once('/')?;
    (file == "catalogue")
        .then(|| BackupId::parse(id).ok())
        .flatten()
}

/// The backup a path under `backups/` belongs to (manifest or chunk list).
pub fn backup_of(path: &str) -> Option<BackupId> {
    let rest = path.strip_prefix(BACKUPS_DIR)?;
    let (id, _) = rest.split_once('/')?;
    BackupId::parse(id).ok()
}

/// The page number of a chunk-list page's path (`backups/<id>/chunks.<n>`).
pub fn chunk_list_page(path: &str) -> Option<u32> {
    let (_, n) = path.strip_prefix(BACKUPS_DIR)?.rsplit_once("/chunks.")?;
    n.parse().ok()
}

/// The chunk id of a path under `chunks/`.
pub fn chunk_of(path: &str) -> Option<cairn_events::ChunkId> {
    let rest = path.strip_prefix(CHUNKS_DIR)?;
    let (_, id) = rest.split_once('/')?;
    cairn_events::ChunkId::parse(id).ok()
}

/// The pack id of a path under `packs/`.
pub fn pack_of(path: &str) -> Option<PackId> {
    let rest = path.strip_prefix(PACKS_DIR)?;
    let (_, id) = rest.split_once('/')?;
    PackId::parse(id).ok()
}

/// The data object (a chunk stored alone or a pack) at `path`, if it is one.
pub fn data_object(path: &str) -> Option<ObjectKey> {
    chunk_of(path)
        .map(|id| ObjectKey::Chunk { id })
        .or_else(|| pack_of(path).map(|id| ObjectKey::Pack { id }))
}

/// Whether an object may be rewritten by a retried request (backup metadata)
/// or is content-addressed and written once (chunks).
pub fn put_mode(key: &ObjectKey) -> cairn_networks::PutMode {
    match key {
        ObjectKey::Chunk { .. }
        | ObjectKey::Pack { .. }
        | ObjectKey::DataKey { .. }
        | ObjectKey::DatasetKey { .. } => cairn_networks::PutMode::IfAbsent,
        _ => cairn_networks::PutMode::Overwrite,
    }
}

/// Whether another run of the same backup would write this object
/// differently under the same name: its manifest, catalogue entry and
/// chunk list pages (chunks and packs are named by their content and data
/// key, keys by themselves).
pub fn of_one_run(key: &ObjectKey) -> bool {
    matches!(
        key,
        ObjectKey::Manifest { .. } | ObjectKey::Catalogue { .. } | ObjectKey::ChunkList { .. }
    )
}

/// The `Nats-Msg-Id` of an object on SEALED: a retry of the same object is
/// dropped as a duplicate; another run's object of the same name is not.
pub fn sealed_msg_id(backup: &BackupId, path: &str, run: Option<&KeyId>) -> String {
    match run {
        Some(run) => format!("sealed-{backup}-{path}-{}", run.to_hex()),
        None => format!("sealed-{backup}-{path}"),
    }
}

/// How errors name an object ("chunk 3fa2…", "manifest of <id>").
pub fn describe(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Chunk { id } => format!("chunk {}", id.to_hex()),
        ObjectKey::Pack { id } => format!("pack {}", id.to_hex()),
        ObjectKey::Manifest { backup_id } => format!("manifest of backup {backup_id}"),
        ObjectKey::DataKey { id } => format!("data key {id}"),
        ObjectKey::Catalogue { backup_id } => format!("catalogue entry of backup {backup_id}"),
        ObjectKey::DatasetKey { id } => format!("dataset key {id}"),
        ObjectKey::ChunkList { backup_id, page } => {
            format!("chunk list page {page} of backup {backup_id}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_events::ChunkId;

    #[test]
    fn paths_round_trip() {
        let id = ChunkId([0xab; 32]);
        let p = object(&ObjectKey::Chunk { id });
        assert!(p.starts_with("chunks/ab/abab"));
        assert_eq!(chunk_of(&p), Some(id));
        assert_eq!(data_object(&p), Some(ObjectKey::Chunk { id }));
        let pack = PackId([0xcd; 32]);
        let pp = object(&ObjectKey::Pack { id: pack });
        assert!(pp.starts_with("packs/cd/cdcd"));
        assert_eq!(pack_of(&pp), Some(pack));
        assert_eq!(chunk_of(&pp), None);
        assert_eq!(data_object(&pp), Some(ObjectKey::Pack { id: pack }));
        let b = BackupId::generate();
        let m = object(&ObjectKey::Manifest {
            backup_id: b.clone(),
        });
        assert_eq!(manifest_backup(&m), Some(b.clone()));
        let page = object(&ObjectKey::ChunkList {
            backup_id: b.clone(),
            page: 7,
        });
        assert_eq!(manifest_backup(&page), None);
        assert_eq!(chunk_list_page(&page), Some(7));
        assert_eq!(chunk_list_page(&m), None);
        assert_eq!(backup_of(&page), Some(b.clone()));
        assert_eq!(backup_of(&m), Some(b.clone()));
        assert_eq!(backup_of("backups/x"), None);
        let c = object(&ObjectKey::Catalogue {
            backup_id: b.clone(),
        });
        assert_eq!(catalogue_backup(&c), Some(b.clone()));
        assert_eq!(catalogue_backup(&m), None);
        assert_eq!(manifest_backup(&c), None);
        assert_eq!(chunk_list_page(&c), None);
        assert_eq!(backup_of(&c), Some(b));
        let first = checkpoint(None, 42);
        let second = checkpoint(Some("ab12"), 42);
        assert_eq!(first, "checkpoints/00000000000000000042");
        assert!(is_checkpoint_of(None, &first) && !is_checkpoint_of(None, &second));
        assert!(is_checkpoint_of(Some("ab12"), &second) && !is_checkpoint_of(Some("ab12"), &first));
        assert!(!is_checkpoint_of(Some("ab"), &second));
    }
}
