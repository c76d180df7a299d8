//! Which CPUs a thread may run on.
//!
//! A server whose compute threads take every core still has other threads —
//! the HTTP runtime waking once per streamed token, the client itself — and
//! each of their wakes takes a core from a compute thread. When it takes the
//! engine thread's core, the whole step waits: the engine thread is the one
//! that samples, streams and starts the next forward pass while the workers
//! spin. Pinning each compute thread to its own CPU and keeping the other
//! threads off the engine thread's CPU sends those wakes to a worker's core
//! instead, where they mostly land in the time it spins between steps.
//!
//! Linux only (`sched_setaffinity`); elsewhere every call reports that nothing
//! was changed.

/// The CPUs the calling thread may run on, in increasing order; empty where
/// that cannot be asked.
pub fn allowed_cpus() -> Vec<usize> {
    imp::allowed_cpus()
}

/// Restricts the calling thread to `cpus`; `false` (and nothing changed) if
/// `cpus` is empty or the system refuses.
pub fn set_current_thread_cpus(cpus: &[usize]) -> bool {
    !cpus.is_empty() && imp::set_current_thread_cpus(cpus)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::mem::{size_of, zeroed};

    pub fn allowed_cpus() -> Vec<usize> {
        // SAFETY: `cpu_set_t` is plain bits (all-zero is the empty set), and
        // `sched_getaffinity` writes at most `size_of::<cpu_set_t>()` bytes into it.
        let (set, ok) = unsafe {
            let mut set: libc::cpu_set_t = zeroed();
            let ok = libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) == 0;
            (set, ok)
        };
        if !ok {
            return Vec::new();
        }
        // SAFETY: `CPU_ISSET` reads the set in bounds for every index below `CPU_SETSIZE`.
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
    }

    pub fn set_current_thread_cpus(cpus: &[usize]) -> bool {
        if cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
            return false;
        }
        // SAFETY: as above; every index is below `CPU_SETSIZE` (checked), and pid 0
        // names the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn allowed_cpus() -> Vec<usize> {
        Vec::new()
    }

    pub fn set_current_thread_cpus(_: &[usize]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_pinned_to_one_allowed_cpu_reports_only_it() {
        let allowed = allowed_cpus();
        if allowed.is_empty() {
            return; // not a platform that can say
        }
        let last = *allowed.last().expect("not empty");
        std::thread::spawn(move || {
            assert!(set_current_thread_cpus(&[last]));
            assert_eq!(allowed_cpus(), [last]);
            assert!(!set_current_thread_cpus(&[]), "an empty set changes nothing");
            assert_eq!(allowed_cpus(), [last]);
        })
        .join()
        .expect("the pinned thread");
        // Other threads keep their own mask.
        assert_eq!(allowed_cpus(), allowed);
    }
}
