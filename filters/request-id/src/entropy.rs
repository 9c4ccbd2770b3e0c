//! Random bytes for generated IDs, drawn from WASI `random_get` in batches.
//!
//! In Envoy every `random_get` is a crossing out of the Wasm VM and a `getrandom` system call;
//! one per request was a measurable share of this filter's cost. The pool asks for
//! [`POOL_BYTES`] at once and hands out 16 bytes per ID, so the crossing is paid once every
//! `POOL_BYTES / 16` IDs. The bytes are as unpredictable as the host's source: they are only
//! fetched earlier, kept in the VM's private memory and used once each.

/// Bytes fetched per `random_get`: 16 IDs' worth.
pub const POOL_BYTES: usize = 256;

/// A buffer of host randomness consumed 16 bytes at a time.
pub struct EntropyPool {
    bytes: [u8; POOL_BYTES],
    /// Next unused byte; `POOL_BYTES` means empty.
    next: usize,
}

impl Default for EntropyPool {
    fn default() -> Self {
        Self { bytes: [0; POOL_BYTES], next: POOL_BYTES }
    }
}

impl EntropyPool {
    /// 16 fresh random bytes, refilling from `fill` when the pool is empty; `None` when the
    /// refill fails (the pool then stays empty, so the next call tries again).
    pub fn take16<E>(&mut self, fill: impl FnOnce(&mut [u8]) -> Result<(), E>) -> Option<[u8; 16]> {
        if self.next + 16 > POOL_BYTES {
            if fill(&mut self.bytes).is_err() {
                self.next = POOL_BYTES;
                return None;
            }
            self.next = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(self.bytes.get(self.next..self.next + 16)?);
        // Used bytes are wiped, so no two IDs can ever share them.
        if let Some(used) = self.bytes.get_mut(self.next..self.next + 16) {
            used.fill(0);
        }
        self.next += 16;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_fill(calls: &mut u32) -> impl FnMut(&mut [u8]) -> Result<(), ()> + '_ {
        move |buffer: &mut [u8]| {
            *calls += 1;
            for (index, byte) in buffer.iter_mut().enumerate() {
                *byte = (index as u8).wrapping_add(*calls as u8);
            }
            Ok(())
        }
    }

    #[test]
    fn one_fill_serves_sixteen_ids() {
        let mut pool = EntropyPool::default();
        let mut calls = 0;
        let mut fill = counting_fill(&mut calls);
        let ids: Vec<_> = (0..POOL_BYTES / 16).map(|_| pool.take16(&mut fill)).collect();
        assert!(ids.iter().all(Option::is_some));
        drop(fill);
        assert_eq!(calls, 1);
        let distinct: std::collections::HashSet<_> = ids.into_iter().flatten().collect();
        assert_eq!(distinct.len(), POOL_BYTES / 16);
    }

    #[test]
    fn the_seventeenth_id_refills() {
        let mut pool = EntropyPool::default();
        let mut calls = 0;
        let mut fill = counting_fill(&mut calls);
        for _ in 0..=POOL_BYTES / 16 {
            assert!(pool.take16(&mut fill).is_some());
        }
        drop(fill);
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_failed_fill_gives_nothing_and_retries_next_time() {
        let mut pool = EntropyPool::default();
        assert_eq!(pool.take16(|_: &mut [u8]| Err(())), None);
        let id = pool.take16(|buffer: &mut [u8]| {
            buffer.fill(7);
            Ok::<(), ()>(())
        });
        assert_eq!(id, Some([7; 16]));
    }

    #[test]
    fn real_os_randomness_fills_the_pool() {
        let mut pool = EntropyPool::default();
        let a = pool.take16(getrandom::fill);
        let b = pool.take16(getrandom::fill);
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
    }
}
