//! `sys/host-info`: the machine the server runs on, in Vault's shape (gopsutil's field names):
//! `cpu`, `cpu_times`, `disk`, `host`, `memory`, `timestamp`. Read from Linux's `/proc` (and
//! `statvfs` for disks); what cannot be read is left out and named in a warning, as Vault does.

use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// One part of the answer, read from the system.
type Part = fn() -> Result<Value, String>;

/// The host information and the warnings for the parts that could not be collected.
pub fn collect() -> (Map<String, Value>, Vec<String>) {
    let mut data = Map::new();
    let mut warnings = Vec::new();
    let parts: [(&str, Part); 5] = [
        ("cpu", cpu),
        ("cpu_times", cpu_times),
        ("disk", disks),
        ("host", host),
        ("memory", memory),
    ];
    for (name, read) in parts {
        match read() {
            Ok(v) => {
                data.insert(name.into(), v);
            }
            Err(e) => warnings.push(format!("error collecting {name} information: {e}")),
        }
    }
    data.insert(
        "timestamp".into(),
        json!(humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()),
    );
    (data, warnings)
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// `/proc/cpuinfo`, one entry per logical CPU.
fn cpu() -> Result<Value, String> {
    let text = read("/proc/cpuinfo")?;
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let f: HashMap<&str, &str> = block
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| f.get(k).copied().unwrap_or("");
        let int = |k: &str| get(k).parse::<i64>().unwrap_or(0);
        let cache_kb = get("cache size")
            .trim_end_matches("KB")
            .trim()
            .parse::<i64>()
            .unwrap_or(0);
        out.push(json!({
            "cpu": int("processor"),
            "vendorId": get("vendor_id"),
            "family": get("cpu family"),
            "model": get("model"),
            "stepping": int("stepping"),
            "physicalId": get("physical id"),
            "coreId": get("core id"),
            "cores": 1,
            "modelName": get("model name"),
            "mhz": get("cpu MHz").parse::<f64>().unwrap_or(0.0),
            "cacheSize": cache_kb,
            "flags": get("flags").split_whitespace().collect::<Vec<_>>(),
            "microcode": get("microcode"),
        }));
    }
    Ok(Value::Array(out))
}

/// Clock ticks per second (`USER_HZ`), the unit of `/proc/stat`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `/proc/stat`: seconds each CPU spent per state.
fn cpu_times() -> Result<Value, String> {
    let text = read("/proc/stat")?;
    let hz = ticks_per_second();
    let names = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guestNice",
    ];
    let out: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let mut entry = Map::new();
            entry.insert("cpu".into(), json!(parts.next().unwrap_or("")));
            for (name, v) in names.iter().zip(parts) {
                let secs = v.parse::<f64>().unwrap_or(0.0) / hz;
                entry.insert((*name).into(), json!(secs));
            }
            Value::Object(entry)
        })
        .collect();
    Ok(Value::Array(out))
}

/// Usage of every mounted block device (`/proc/self/mounts`, `statvfs`).
fn disks() -> Result<Value, String> {
    let text = read("/proc/self/mounts")?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [device, path, fstype, ..] = f[..] else {
            continue;
        };
        if !(device.starts_with("/dev/") || path == "/") || !seen.insert(path.to_string()) {
            continue;
        }
        if let Some(usage) = disk_usage(path, fstype) {
            out.push(usage);
        }
    }
    Ok(Value::Array(out))
}

fn disk_usage(path: &str, fstype: &str) -> Option<Value> {
    let c_path = std::ffi::CString::new(path).ok()?;
    // SAFETY: statvfs writes only into the zeroed struct we pass; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let bsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * bsize;
    let free = st.f_bavail as u64 * bsize;
    let used = (st.f_blocks as u64 - st.f_bfree as u64) * bsize;
    let percent = |used: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            used as f64 * 100.0 / total as f64
        }
    };
    let (inodes_total, inodes_free) = (st.f_files as u64, st.f_ffree as u64);
    let inodes_used = inodes_total.saturating_sub(inodes_free);
    Some(json!({
        "path": path,
        "fstype": fstype,
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": percent(used, used + free),
        "inodesTotal": inodes_total,
        "inodesUsed": inodes_used,
        "inodesFree": inodes_free,
        "inodesUsedPercent": percent(inodes_used, inodes_total),
    }))
}

fn host() -> Result<Value, String> {
    let trimmed = |p: &str| read(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let uptime = read("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let boot_time = read("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    let os_release = read("/etc/os-release").unwrap_or_default();
    let release = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let platform = release("ID");
    let family = Some(release("ID_LIKE"))
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| platform.clone());
    Ok(json!({
        "hostname": trimmed("/proc/sys/kernel/hostname"),
        "uptime": uptime,
        "bootTime": boot_time,
        "procs": procs,
        "os": std::env::consts::OS,
        "platform": platform,
        "platformFamily": family,
        "platformVersion": release("VERSION_ID"),
        "kernelVersion": trimmed("/proc/sys/kernel/osrelease"),
        "kernelArch": std::env::consts::ARCH,
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostid": trimmed("/etc/machine-id"),
    }))
}

/// `/proc/meminfo`, in bytes, with gopsutil's `used` (total less free, buffers and cache).
fn memory() -> Result<Value, String> {
    let text = read("/proc/meminfo")?;
    let kb: HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((k.trim(), n * 1024))
        })
        .collect();
    let get = |k: &str| kb.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let cached = get("Cached") + get("SReclaimable");
    let used = total.saturating_sub(get("MemFree") + get("Buffers") + cached);
    Ok(json!({
        "total": total,
        "available": get("MemAvailable"),
        "used": used,
        "usedPercent": if total == 0 { 0.0 } else { used as f64 * 100.0 / total as f64 },
        "free": get("MemFree"),
        "active": get("Active"),
        "inactive": get("Inactive"),
        "buffers": get("Buffers"),
        "cached": cached,
        "shared": get("Shmem"),
        "slab": get("Slab"),
        "dirty": get("Dirty"),
        "writeback": get("Writeback"),
        "swaptotal": get("SwapTotal"),
        "swapfree": get("SwapFree"),
        "mapped": get("Mapped"),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_part_is_collected_on_linux() {
        let (data, warnings) = super::collect();
        assert!(warnings.is_empty(), "{warnings:?}");
        for k in ["cpu", "cpu_times", "disk", "host", "memory", "timestamp"] {
            assert!(data.contains_key(k), "{k}");
        }
        assert!(data["memory"]["total"].as_u64().unwrap() > 0);
        assert!(!data["cpu"].as_array().unwrap().is_empty());
        assert!(data["disk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "/"));
    }
}
