//! The views' save runs in the scheduler's idle class. It is bulk work that may wait: on two
//! busy cores it took one of them from the commands for ~10 ms every ~100 ms, and the
//! commands answered in those windows were the p99 (docs/performance.md). In the idle class
//! it runs only on a core no other thread wants, and any thread that wakes takes the core
//! back at once.

/// While held, this thread is in `SCHED_IDLE`; once dropped, back in the class it was in.
/// Where the kernel refuses (a sandbox's filter), nothing changes.
pub(super) struct IdleClass {
    left: Option<libc::c_int>,
}

impl IdleClass {
    pub(super) fn enter() -> IdleClass {
        let before = current_policy();
        let left = before.filter(|_| set_policy(libc::SCHED_IDLE));
        IdleClass { left }
    }
}

impl Drop for IdleClass {
    fn drop(&mut self) {
        if let Some(policy) = self.left {
            set_policy(policy);
        }
    }
}

fn current_policy() -> Option<libc::c_int> {
    // SAFETY: no pointers; pid 0 is the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    (policy >= 0).then_some(policy)
}

fn set_policy(policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call, which only reads it; pid 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_idle_class_while_held_and_back_after() {
        // SAFETY: no arguments.
        let test_thread = unsafe { libc::gettid() };
        // Whatever class the tests run in (a CI runner may start them in another).
        let before = current_policy().filter(|&p| p != libc::SCHED_IDLE);
        assert!(before.is_some(), "the tests already run in the idle class");
        std::thread::spawn(move || {
            let held = IdleClass::enter();
            assert_eq!(current_policy(), Some(libc::SCHED_IDLE));
            // The process's other threads keep their class.
            // SAFETY: no pointers.
            let other = unsafe { libc::sched_getscheduler(test_thread) };
            assert_eq!(Some(other), before);
            drop(held);
            assert_eq!(current_policy(), before);
        })
        .join()
        .expect("the thread's checks");
    }
}
