//! Stream positions, saved as Lambda's event source mapping keeps them: after each batch the
//! function has finished with, the sequence number of the last record it is done with. A host
//! restarted against the same emulator resumes every shard after its checkpoint instead of at
//! the trigger's `StartingPosition`, so nothing is skipped and little is read twice.
//!
//! Kept in one JSON file (written to a temporary file and renamed, so a kill never leaves half a
//! file), or only in memory when the host has no state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Checkpoints {
    path: Option<PathBuf>,
    /// `<stream ARN> <shard id>` -> sequence number.
    positions: Mutex<BTreeMap<String, String>>,
}

impl Checkpoints {
    /// Loads the file if there is one (an unreadable one is reported and started over).
    pub fn open(path: Option<PathBuf>) -> Self {
        let positions = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| match serde_json::from_str(&text) {
                Ok(positions) => Some(positions),
                Err(e) => {
                    tracing::warn!(error = %e, "stream checkpoints unreadable: starting from each trigger's StartingPosition");
                    None
                }
            })
            .unwrap_or_default();
        Self { path, positions: Mutex::new(positions) }
    }

    fn key(stream_arn: &str, shard_id: &str) -> String {
        format!("{stream_arn} {shard_id}")
    }

    pub fn get(&self, stream_arn: &str, shard_id: &str) -> Option<String> {
        self.positions.lock().unwrap().get(&Self::key(stream_arn, shard_id)).cloned()
    }

    pub fn len(&self) -> usize {
        self.positions.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a position and writes the file before returning.
    pub fn save(&self, stream_arn: &str, shard_id: &str, sequence_number: &str) {
        let mut positions = self.positions.lock().unwrap();
        let key = Self::key(stream_arn, shard_id);
        if positions.get(&key).map(String::as_str) == Some(sequence_number) {
            return;
        }
        positions.insert(key, sequence_number.to_owned());
        let Some(path) = &self.path else { return };
        let text = serde_json::to_string_pretty(&*positions).unwrap_or_default();
        let temporary = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path)) {
            tracing::error!(error = %e, path = %path.display(), "could not save a stream checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_a_reopen_and_a_missing_file_starts_empty() {
        let dir = std::env::temp_dir().join(format!("checkpoints-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoints.json");
        let first = Checkpoints::open(Some(path.clone()));
        assert!(first.is_empty());
        first.save("arn:stream", "shard-1", "100");
        first.save("arn:stream", "shard-1", "200");
        let reopened = Checkpoints::open(Some(path));
        assert_eq!(reopened.get("arn:stream", "shard-1").as_deref(), Some("200"));
        assert_eq!(reopened.get("arn:stream", "shard-2"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn uuid_like() -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        format!("{}-{nanos}", std::process::id())
    }
}
