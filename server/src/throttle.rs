//! Login throttling: failed sign-ins are counted per username and per client address, and
//! past a number of free failures each key is locked for a time that doubles with every
//! further failure. A locked key is answered `429` with `Retry-After` before any password is
//! hashed, so a flood costs no Argon2 time. An attempt counts as failed from the moment it
//! starts (concurrent guesses cannot all slip in before the first one fails); a success takes
//! it back and clears its user's failures.

use std::collections::HashMap;
use std::sync::Mutex;

/// When and how hard sign-ins are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures one username may have before it is locked.
    pub free_per_user: u32,
    /// Failures one client address may have (over all usernames) before it is locked.
    pub free_per_addr: u32,
    /// The first lock, in milliseconds; each further failure doubles it.
    pub first_lock_ms: i64,
    /// The longest lock.
    pub max_lock_ms: i64,
    /// Failures are forgotten this long after a key's last one.
    pub forget_after_ms: i64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            free_per_user: 10,
            free_per_addr: 20,
            first_lock_ms: 1_000,
            max_lock_ms: 3_600_000,
            forget_after_ms: 3_600_000,
        }
    }
}

/// Most keys remembered; beyond it, keys that are neither locked nor recent are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(String),
}

/// The failure counters of one server.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    limits: LoginLimits,
    keys: Mutex<HashMap<Key, Failures>>,
}

/// An attempt let through: counted as failed until [`Attempt::succeeded`].
#[derive(Debug)]
#[must_use = "an attempt stays counted as failed unless it succeeded"]
pub struct Attempt {
    user: Key,
    addr: Option<Key>,
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn lock_ms(&self, f: Failures, free: u32) -> i64 {
        if f.count < free {
            return 0;
        }
        let doublings = (f.count - free).min(40);
        self.limits
            .first_lock_ms
            .saturating_mul(1i64 << doublings)
            .min(self.limits.max_lock_ms)
    }

    /// Lets an attempt for `username` from `addr` through, counting it as failed, or says in
    /// how many seconds the user or the address may try again.
    pub fn begin(&self, username: &str, addr: Option<&str>, now_ms: i64) -> Result<Attempt, u64> {
        let user = Key::User(username.to_lowercase());
        let addr = addr.map(|a| Key::Addr(a.to_string()));
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait_ms = 0i64;
        for (key, free) in [
            (Some(&user), self.limits.free_per_user),
            (addr.as_ref(), self.limits.free_per_addr),
        ] {
            let Some(key) = key else { continue };
            if let Some(f) = keys.get(key) {
                if now_ms - f.last_ms > self.limits.forget_after_ms {
                    keys.remove(key);
                    continue;
                }
                let until = f.last_ms.saturating_add(self.lock_ms(*f, free));
                wait_ms = wait_ms.max(until - now_ms);
            }
        }
        if wait_ms > 0 {
            return Err(u64::try_from((wait_ms + 999).div_euclid(1000)).unwrap_or(1));
        }
        if keys.len() >= MAX_KEYS {
            self.prune(&mut keys, now_ms);
        }
        for key in std::iter::once(&user).chain(addr.as_ref()) {
            let f = keys.entry(key.clone()).or_insert(Failures {
                count: 0,
                last_ms: now_ms,
            });
            f.count = f.count.saturating_add(1);
            f.last_ms = now_ms;
        }
        Ok(Attempt { user, addr })
    }

    /// The attempt was right: its user's failures are cleared and the address's count gets
    /// this attempt back.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&attempt.user);
        if let Some(addr) = &attempt.addr {
            if let Some(f) = keys.get_mut(addr) {
                f.count = f.count.saturating_sub(1);
                if f.count == 0 {
                    keys.remove(addr);
                }
            }
        }
    }

    /// Drops forgotten keys, then unlocked ones, then (a flood of distinct keys) all.
    fn prune(&self, keys: &mut HashMap<Key, Failures>, now_ms: i64) {
        keys.retain(|_, f| now_ms - f.last_ms <= self.limits.forget_after_ms);
        if keys.len() >= MAX_KEYS {
            let free = self.limits.free_per_user.min(self.limits.free_per_addr);
            keys.retain(|_, f| f.count >= free);
        }
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            free_per_user: 3,
            free_per_addr: 5,
            first_lock_ms: 1_000,
            max_lock_ms: 60_000,
            forget_after_ms: 600_000,
        }
    }

    #[test]
    fn a_user_is_locked_after_its_free_failures_for_a_doubling_time() {
        let t = LoginThrottle::new(limits());
        let mut now = 0;
        for _ in 0..3 {
            let _failed = t.begin("alice", Some("10.0.0.1"), now).expect("free");
        }
        // The third failure reached the limit: one second.
        assert_eq!(t.begin("Alice", Some("10.0.0.2"), now).err(), Some(1));
        now += 1_000;
        let _failed = t.begin("alice", Some("10.0.0.2"), now).expect("lock over");
        // Four failures: two seconds.
        assert!(t.begin("alice", None, now + 1_500).is_err());
        now += 2_000;
        let _failed = t.begin("alice", None, now).expect("lock over");
        assert!(t.begin("alice", None, now + 3_999).is_err());
        // Other users are not locked by it.
        let _other = t.begin("bob", Some("10.0.0.3"), now).expect("bob");
    }

    #[test]
    fn an_address_is_locked_over_all_usernames_and_never_hashes_when_locked() {
        let t = LoginThrottle::new(limits());
        for i in 0..5 {
            let _failed = t
                .begin(&format!("u{i}"), Some("10.0.0.9"), 0)
                .expect("free");
        }
        let refused = (0..1000)
            .filter(|i| t.begin(&format!("v{i}"), Some("10.0.0.9"), 500).is_err())
            .count();
        assert_eq!(refused, 1000);
        let _elsewhere = t
            .begin("v1", Some("10.0.0.10"), 500)
            .expect("other address");
    }

    #[test]
    fn a_success_clears_its_user_and_gives_the_address_its_attempt_back() {
        let t = LoginThrottle::new(limits());
        for _ in 0..2 {
            let _failed = t.begin("alice", Some("a"), 0).expect("free");
        }
        let ok = t.begin("alice", Some("a"), 0).expect("third");
        t.succeeded(ok);
        for _ in 0..3 {
            let _failed = t.begin("alice", Some("b"), 10).expect("cleared");
        }
        assert!(t.begin("alice", Some("c"), 10).is_err());
    }

    #[test]
    fn failures_are_forgotten_and_locks_are_capped() {
        let t = LoginThrottle::new(limits());
        for _ in 0..40 {
            let _ = t.begin("alice", None, 0);
        }
        for i in 0..40i64 {
            let at = i * 61_000;
            if let Ok(a) = t.begin("alice", None, at) {
                drop(a);
            }
        }
        // Each failure 61 s apart got through: the lock never exceeds its 60 s cap.
        let wait = t.begin("alice", None, 39 * 61_000 + 1).err();
        assert_eq!(wait, Some(60));
        // A quiet ten minutes forget everything.
        let _fresh = t
            .begin("alice", None, 39 * 61_000 + 700_000)
            .expect("forgotten");
    }
}
