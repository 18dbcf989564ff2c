//! Watches the config directory and reports each new version of the file.
//!
//! The kubelet updates a ConfigMap volume by writing a new timestamped directory and renaming the
//! `..data` link over the old one, so the file is never modified in place: the directory is watched
//! (not the file), any event triggers a debounced re-read, and only changed content is reported.
//! A periodic re-read covers lost events (inotify overflow, missed renames).

use super::{Config, ConfigError, parse};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long to wait after an event for the rest of a burst (the kubelet's swap is several events).
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// How often the file is re-read even without events.
pub const SAFETY_REREAD: Duration = Duration::from_secs(10);

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// notify could not watch the directory.
    #[error("cannot watch {dir}: {source}")]
    Notify {
        /// The directory.
        dir: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
}

/// Whether an event in the config directory may mean the file changed. Opening, reading and closing
/// a file unwritten are events too: the watcher's own read of the file must not wake it again, or an idle
/// sidecar re-reads its config after every debounce, ten times a second.
pub fn may_change(event: &notify::Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Starts watching `path`'s directory; `apply` gets every new valid config, `reject` every invalid one.
/// `current` is the text already applied, so it is not reported again.
pub fn spawn(
    path: PathBuf,
    current: String,
    apply: impl Fn(Config) -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
    reject: impl Fn(ConfigError) + Send + 'static,
    shutdown: CancellationToken,
) -> Result<(), WatchError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Errors (such as an inotify overflow) also trigger a re-read: content is compared anyway.
        if event.as_ref().is_ok_and(|event| !may_change(event)) {
            return;
        }
        let _ = tx.try_send(());
    })
    .map_err(|source| WatchError::Notify {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify {
            dir: dir.clone(),
            source,
        })?;
    tokio::spawn(async move {
        let _watcher = watcher;
        let mut last = current;
        let mut safety = tokio::time::interval(SAFETY_REREAD);
        safety.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(()) = rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = safety.tick() => {}
            }
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(text) => text,
                Err(source) => {
                    // During a swap the link can be briefly missing; the next event or tick re-reads.
                    if last != "\0unreadable" {
                        reject(ConfigError::Read {
                            path: path.clone(),
                            source,
                        });
                        last = "\0unreadable".into();
                    }
                    continue;
                }
            };
            if text == last {
                continue;
            }
            last = text.clone();
            match parse(&text, &path) {
                Ok(config) => apply(config).await,
                Err(error) => reject(error),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;

    /// Events the directory of `file` reports while `act` runs, read from a real inotify watch.
    fn events_during(dir: &Path, act: impl FnOnce()) -> Vec<notify::Event> {
        let (tx, rx) = std_mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let _ = tx.send(event);
            }
        })
        .unwrap();
        watcher.watch(dir, RecursiveMode::NonRecursive).unwrap();
        act();
        let mut events = Vec::new();
        while let Ok(event) = rx.recv_timeout(Duration::from_millis(300)) {
            events.push(event);
        }
        events
    }

    #[test]
    fn reading_the_config_does_not_wake_the_watcher_and_changing_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "targets: []\n").unwrap();

        let read = events_during(dir.path(), || {
            std::fs::read_to_string(&file).unwrap();
        });
        assert!(
            !read.is_empty(),
            "inotify reports the read itself, which is what must be ignored"
        );
        assert!(read.iter().all(|e| !may_change(e)), "a read woke the watcher: {read:?}");

        let written = events_during(dir.path(), || std::fs::write(&file, "targets: [] # edited\n").unwrap());
        assert!(written.iter().any(may_change), "an edit was missed: {written:?}");

        // The kubelet's swap: a new file renamed over the old one.
        let staged = dir.path().join("..staged");
        std::fs::write(&staged, "targets: []\n").unwrap();
        let swapped = events_during(dir.path(), || std::fs::rename(&staged, &file).unwrap());
        assert!(swapped.iter().any(may_change), "a swap was missed: {swapped:?}");
    }
}
