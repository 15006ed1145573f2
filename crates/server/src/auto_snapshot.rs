//! Scheduled snapshots (the config's `snapshot_auto` block; an Enterprise feature in Vault):
//! every `interval`, the active node writes a snapshot ([`tresor_core::snapshot`]) into
//! `path_prefix` and keeps the newest `retain` of them. Standbys and sealed nodes skip their
//! turn, so a cluster writes one series, from whichever node is active.

use crate::config::AutoSnapshot;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tresor_core::core::Core;

const SUFFIX: &str = ".snap";

/// Runs the schedule until `stop`.
pub fn spawn(core: Arc<Core>, cfg: AutoSnapshot, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + cfg.interval, cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if core.active().is_err() {
                continue;
            }
            match take(&core, &cfg).await {
                Ok((path, pruned)) => {
                    tracing::info!(path = %path.display(), pruned, "automated snapshot saved")
                }
                Err(e) => tracing::error!(error = %e, "automated snapshot failed"),
            }
        }
    });
}

/// Takes one snapshot into the directory and prunes past `retain`: the file written and how
/// many old ones were removed.
async fn take(core: &Core, cfg: &AutoSnapshot) -> Result<(PathBuf, usize), String> {
    let bytes = core.save_snapshot().await.map_err(|e| e.to_string())?;
    let name = format!("{}-{}{SUFFIX}", cfg.file_prefix, stamp());
    let path = cfg.path_prefix.join(name);
    let cfg = cfg.clone();
    let written = path.clone();
    tokio::task::spawn_blocking(move || -> Result<usize, String> {
        std::fs::create_dir_all(&cfg.path_prefix)
            .map_err(|e| format!("creating {}: {e}", cfg.path_prefix.display()))?;
        tresor_core::snapshot::write_file_durably(&written, &bytes)
            .map_err(|e| format!("writing {}: {e}", written.display()))?;
        prune(&cfg).map_err(|e| format!("pruning {}: {e}", cfg.path_prefix.display()))
    })
    .await
    .map_err(|e| e.to_string())?
    .map(|pruned| (path, pruned))
}

/// UTC time to the millisecond, in a form that sorts as it reads: `20261207T101500.123Z`.
fn stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// Removes this schedule's oldest snapshots beyond `retain` (names sort by time).
fn prune(cfg: &AutoSnapshot) -> std::io::Result<usize> {
    let prefix = format!("{}-", cfg.file_prefix);
    let mut ours: Vec<PathBuf> = std::fs::read_dir(&cfg.path_prefix)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(SUFFIX)
        })
        .map(|e| e.path())
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(cfg.retain);
    for old in &ours[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(excess)
}
