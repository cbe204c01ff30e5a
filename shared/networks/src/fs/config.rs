//! `kind = "fs"`: a local (or mounted) directory.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// The directory. Unset: `<data_dir>/networks/<name>` (filled in by the
    /// configuration loader, which knows the data directory).
    pub path: Option<PathBuf>,
}
