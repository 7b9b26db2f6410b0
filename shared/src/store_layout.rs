//! The model store's layout on a device: the one place that names its folders and files.
//!
//! ```text
//! STORE/                         default /var/lib/emotion-edge/models (deploy/install.sh)
//!   inbox/                       new bundles arrive here (emotion-train push), as NAME/ or NAME.tar
//!   inbox/ROLLBACK               asks the running service to go back to previous/
//!   current/                     the bundle that runs
//!   previous/                    the one before it (rollback target)
//!   rejected/NAME/REASON.txt     refused bundles, with the reason
//! ```
//!
//! Writers put a bundle into the inbox under a hidden name (starting with `.`) and rename it
//! into place, so the watcher never sees half a bundle; it ignores hidden entries.

use std::path::{Path, PathBuf};

/// The store an installed service uses (`deploy/install.sh`, the systemd unit).
pub const DEFAULT_STORE: &str = "/var/lib/emotion-edge/models";
/// Inbox folder name.
pub const INBOX: &str = "inbox";
/// Running bundle folder name.
pub const CURRENT: &str = "current";
/// Previous bundle folder name.
pub const PREVIOUS: &str = "previous";
/// Refused bundles folder name.
pub const REJECTED: &str = "rejected";
/// A file of this name in the inbox asks for a rollback to `previous/`.
pub const ROLLBACK_TRIGGER: &str = "ROLLBACK";
/// The reason file written into a refused bundle.
pub const REASON_FILE: &str = "REASON.txt";

/// The paths of one store root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    root: PathBuf,
}

impl StoreLayout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreLayout { root: root.into() }
    }

    /// The layout of the installed service's store ([`DEFAULT_STORE`]).
    pub fn installed() -> Self {
        Self::new(DEFAULT_STORE)
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where new bundles arrive.
    pub fn inbox(&self) -> PathBuf {
        self.root.join(INBOX)
    }

    /// The running bundle.
    pub fn current(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    /// The bundle before the running one.
    pub fn previous(&self) -> PathBuf {
        self.root.join(PREVIOUS)
    }

    /// Refused bundles.
    pub fn rejected(&self) -> PathBuf {
        self.root.join(REJECTED)
    }

    /// The rollback request file.
    pub fn rollback_trigger(&self) -> PathBuf {
        self.inbox().join(ROLLBACK_TRIGGER)
    }

    /// The hidden name a writer (told apart by `writer`, e.g. its process id) unpacks `name`
    /// under before renaming it into the inbox.
    pub fn staging_name(name: &str, writer: impl std::fmt::Display) -> String {
        format!(".{name}.push.{writer}")
    }

    /// Whether the watcher skips this inbox entry (hidden: still being written).
    pub fn is_hidden(entry_name: &str) -> bool {
        entry_name.starts_with('.')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_installed_store() {
        let s = StoreLayout::installed();
        assert_eq!(s.inbox(), Path::new("/var/lib/emotion-edge/models/inbox"));
        assert_eq!(
            s.rollback_trigger(),
            Path::new("/var/lib/emotion-edge/models/inbox/ROLLBACK")
        );
        assert_eq!(
            s.previous(),
            Path::new("/var/lib/emotion-edge/models/previous")
        );
        let staged = StoreLayout::staging_name("m-1", 42);
        assert!(StoreLayout::is_hidden(&staged), "{staged}");
        assert!(!StoreLayout::is_hidden("m-1"));
    }
}
