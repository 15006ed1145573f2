//! What the server does to its own process before it holds a secret: no core dumps, memory
//! locked out of swap, and enough file descriptors for its connections.
//!
//! * Core dumps: `prctl(PR_SET_DUMPABLE, 0)` and `RLIMIT_CORE = 0`, always. A core file (or a
//!   debugger attaching as the same user) would hold the keyring, tokens and secrets. Not
//!   dumpable also keeps other processes of the same user out of `/proc/<pid>/mem`.
//! * Memory locking: `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` unless the config says
//!   `disable_mlock = true` (Vault's key; `-dev` sets it, as Vault's dev mode does). As in
//!   Vault, a server that was asked to lock memory and cannot refuses to start, naming the key.
//!   `MCL_ONFAULT` locks pages as they are touched, so reserved but unused address space
//!   (thread stacks, allocator arenas) costs no RAM.
//! * Open files: the soft `RLIMIT_NOFILE` is raised to the hard limit; connections are capped
//!   below it (`max_connections`, see [`crate::connections`]).
//!
//! Only Linux (and other Unixes for the limits) is supported; elsewhere these are no-ops.

/// Raises the soft open-files limit to the hard one; returns the limit now in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// The soft open-files limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0).then_some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Makes the process non-dumpable and its core size limit zero.
pub fn disable_core_dumps() -> Result<(), String> {
    #[cfg(unix)]
    unsafe {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            return Err(format!(
                "cannot disable core dumps: {}",
                std::io::Error::last_os_error()
            ));
        }
        #[cfg(target_os = "linux")]
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(format!(
                "cannot mark the process non-dumpable: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Locks all current and future memory of the process (see the module doc).
pub fn lock_memory() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    unsafe {
        let all = libc::MCL_CURRENT | libc::MCL_FUTURE;
        // Kernels before 4.4 do not know MCL_ONFAULT (EINVAL): lock without it there.
        if libc::mlockall(all | libc::MCL_ONFAULT) != 0 && libc::mlockall(all) != 0 {
            return Err(format!(
                "failed to lock memory: {}. Tresor locks its memory so that keys and secrets are \
                 never swapped to disk; this needs the CAP_IPC_LOCK capability (or root, or a \
                 large enough RLIMIT_MEMLOCK). Grant it, or set `disable_mlock = true` in the \
                 configuration file (for example where swap is off or encrypted)",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
