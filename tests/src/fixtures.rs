//! What tests back up and how they compare: trees of files, random and
//! compressible data, snapshots of a restored tree, and network
//! configurations as a user writes them.

use std::io::Write;
use std::path::Path;

/// A tree's paths and contents: [`snapshot`] without modes and times (what
/// a rewrite with the same bytes leaves unchanged).
pub fn contents(root: &Path) -> std::collections::BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .map(|(p, v)| {
            let f: Vec<&str> = v.split(' ').collect();
            let kept = match f[0] {
                "file" => format!("{} {}", f[2], f[f.len() - 1]),
                "dir" => "dir".to_string(),
                _ => v.clone(),
            };
            (p, kept)
        })
        .collect()
}

/// A file-by-file description of a tree: relative path → (kind, mode, mtime, sha256/target).
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let desc = if md.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if md.is_dir() {
            format!("dir {:o}", md.mode() & 0o7777)
        } else {
            let mut h = Sha256::new();
            let mut f = std::fs::File::open(e.path()).unwrap();
            std::io::copy(&mut f, &mut h).unwrap();
            format!(
                "file {:o} {} {} {}",
                md.mode() & 0o7777,
                md.len(),
                md.mtime(),
                hex::encode(h.finalize())
            )
        };
        out.insert(rel, desc);
    }
    out
}

/// Writes `n` bytes of random data.
pub fn random_file(path: &Path, n: usize) {
    use rand::RngCore;
    let mut f = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len());
        rand::thread_rng().fill_bytes(&mut buf[..k]);
        f.write_all(&buf[..k]).unwrap();
        left -= k;
    }
}

/// Writes `n` bytes of compressible, line-oriented text seeded by `seed`.
pub fn text_file(path: &Path, n: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut i = seed;
    while written < n {
        let line = format!(
            "{i:012} account={} balance={} note=lorem ipsum dolor sit amet\n",
            i * 7919 % 100_003,
            i % 977
        );
        f.write_all(line.as_bytes()).unwrap();
        written += line.len();
        i += 1;
    }
}

/// A network's configuration as a user writes it (`[[networks]]` keys),
/// through the same parser as `cairn.toml`.
pub fn network(v: serde_json::Value) -> cairn_config::NetworkConfig {
    let v = strip_nulls(v);
    cairn_config::NetworkConfig::try_from(v).unwrap_or_else(|e| panic!("{e}"))
}

/// `cfg` with some keys changed (`null` removes a key), parsed again: the
/// parser's error if the result is not a valid configuration.
pub fn with(
    cfg: &cairn_config::NetworkConfig,
    changes: serde_json::Value,
) -> Result<cairn_config::NetworkConfig, String> {
    let mut v = serde_json::to_value(cfg).unwrap();
    if let (Some(m), serde_json::Value::Object(c)) = (v.as_object_mut(), changes) {
        m.extend(c);
    }
    cairn_config::NetworkConfig::try_from(strip_nulls(v))
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}
