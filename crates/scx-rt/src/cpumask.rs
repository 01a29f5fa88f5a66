//! Atomic cpumasks.
//!
//! [`AtomicCpumask`] is a bitmap of CPU ids sized once, at construction, to
//! the runtime's CPU count (up to [`MAX_CPUS`](crate::consts::MAX_CPUS)).
//! Single-bit operations are one atomic instruction on one word, so the hot
//! paths (kick bits, idle claims) do O(1) work whatever the CPU count. Whole
//! mask walks (`iter`, `first`, `weight`) cost one load per 64 CPUs and are
//! used only on the kick step and in idle searches, never per task switch.
//!
//! Walks are not snapshots: each word is read once, so a concurrent writer may
//! be seen in one word and not another. Every user in scx-rt tolerates that
//! (the kernel's cpumask walks have the same property).

use crate::loom::{AtomicU64, Ordering};

/// Bits per word.
const WORD: usize = 64;

/// A fixed-width atomic cpumask.
pub struct AtomicCpumask {
    words: Box<[AtomicU64]>,
    nr_cpus: usize,
}

impl AtomicCpumask {
    /// An empty mask able to hold CPUs `0..nr_cpus`.
    pub fn new(nr_cpus: usize) -> Self {
        let n = nr_cpus.div_ceil(WORD).max(1);
        Self {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            nr_cpus,
        }
    }

    /// Number of CPUs the mask can hold.
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    #[inline]
    fn at(&self, cpu: usize) -> (&AtomicU64, u64) {
        debug_assert!(cpu < self.nr_cpus, "cpu {cpu} out of mask range");
        (&self.words[cpu / WORD], 1u64 << (cpu % WORD))
    }

    /// Sets `cpu`'s bit.
    #[inline]
    pub fn set(&self, cpu: usize) {
        let (w, b) = self.at(cpu);
        w.fetch_or(b, Ordering::SeqCst);
    }

    /// Clears `cpu`'s bit.
    #[inline]
    pub fn clear(&self, cpu: usize) {
        let (w, b) = self.at(cpu);
        w.fetch_and(!b, Ordering::SeqCst);
    }

    /// Whether `cpu`'s bit is set.
    #[inline]
    pub fn test(&self, cpu: usize) -> bool {
        let (w, b) = self.at(cpu);
        w.load(Ordering::SeqCst) & b != 0
    }

    /// Sets `cpu`'s bit and returns whether it was already set.
    #[inline]
    pub fn test_and_set(&self, cpu: usize) -> bool {
        let (w, b) = self.at(cpu);
        w.fetch_or(b, Ordering::SeqCst) & b != 0
    }

    /// Clears `cpu`'s bit and returns whether it was set. Of many concurrent
    /// callers on one set bit exactly one gets `true` (SPEC.md §11 inv. 24).
    #[inline]
    pub fn test_and_clear(&self, cpu: usize) -> bool {
        let (w, b) = self.at(cpu);
        // A plain load first keeps the common "already clear" case from
        // taking the cache line exclusively.
        if w.load(Ordering::Relaxed) & b == 0 {
            return false;
        }
        w.fetch_and(!b, Ordering::SeqCst) & b != 0
    }

    /// Sets every CPU `0..nr_cpus`.
    pub fn fill(&self) {
        for (i, w) in self.words.iter().enumerate() {
            let lo = i * WORD;
            let n = self.nr_cpus.saturating_sub(lo).min(WORD);
            let bits = if n == WORD { u64::MAX } else { (1u64 << n) - 1 };
            w.store(bits, Ordering::SeqCst);
        }
    }

    /// Clears every bit.
    pub fn clear_all(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::SeqCst);
        }
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.load(Ordering::SeqCst) == 0)
    }

    /// Number of set bits.
    pub fn weight(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::SeqCst).count_ones() as usize)
            .sum()
    }

    /// Lowest set CPU.
    pub fn first(&self) -> Option<usize> {
        self.first_from(0)
    }

    /// First set CPU at or after `start`, wrapping around once. Used to
    /// spread idle picks instead of always favouring CPU 0.
    pub fn first_from(&self, start: usize) -> Option<usize> {
        let n = self.words.len();
        let start = if self.nr_cpus == 0 {
            0
        } else {
            start % self.nr_cpus
        };
        let sw = start / WORD;
        for k in 0..=n {
            let wi = (sw + k) % n;
            let mut bits = self.words[wi].load(Ordering::SeqCst);
            if k == 0 {
                bits &= u64::MAX << (start % WORD);
            } else if k == n {
                // Wrapped back to the first word: only bits below start.
                let below = start % WORD;
                bits &= if below == 0 { 0 } else { (1u64 << below) - 1 };
            }
            if bits != 0 {
                return Some(wi * WORD + bits.trailing_zeros() as usize);
            }
        }
        None
    }

    /// First CPU set in both `self` and `other` at or after `start`
    /// (wrapping). `other` must have the same width.
    pub fn first_and_from(&self, other: &AtomicCpumask, start: usize) -> Option<usize> {
        debug_assert_eq!(self.words.len(), other.words.len());
        let n = self.words.len();
        let start = if self.nr_cpus == 0 {
            0
        } else {
            start % self.nr_cpus
        };
        let sw = start / WORD;
        for k in 0..=n {
            let wi = (sw + k) % n;
            let mut bits =
                self.words[wi].load(Ordering::SeqCst) & other.words[wi].load(Ordering::SeqCst);
            if k == 0 {
                bits &= u64::MAX << (start % WORD);
            } else if k == n {
                let below = start % WORD;
                bits &= if below == 0 { 0 } else { (1u64 << below) - 1 };
            }
            if bits != 0 {
                return Some(wi * WORD + bits.trailing_zeros() as usize);
            }
        }
        None
    }

    /// Visits the set CPUs from `start` upwards, wrapping around once,
    /// until `f` returns true; returns that CPU. One load per word (a word
    /// is read again only when the walk wraps into it), and bits set or
    /// cleared during the walk may or may not be seen.
    #[inline]
    pub fn find_from(&self, start: usize, mut f: impl FnMut(usize) -> bool) -> Option<usize> {
        let n = self.words.len();
        // The callers' start is usually in range already: no division then.
        let start = if start < self.nr_cpus {
            start
        } else if self.nr_cpus == 0 {
            0
        } else {
            start % self.nr_cpus
        };
        // Bits at or above `start` in its word: the first look; the rest
        // of that word is the last, after the walk wrapped.
        let from_start = u64::MAX << (start % WORD);
        if n == 1 {
            // Up to 64 CPUs: one load, and nothing more for an empty mask.
            let all = self.words[0].load(Ordering::SeqCst);
            for mut bits in [all & from_start, all & !from_start] {
                while bits != 0 {
                    let cpu = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if f(cpu) {
                        return Some(cpu);
                    }
                }
            }
            return None;
        }
        let mut wi = start / WORD;
        for k in 0..=n {
            let mut bits = self.words[wi].load(Ordering::SeqCst);
            if k == 0 {
                bits &= from_start;
            } else if k == n {
                bits &= !from_start;
            }
            while bits != 0 {
                let cpu = wi * WORD + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if f(cpu) {
                    return Some(cpu);
                }
            }
            wi += 1;
            if wi == n {
                wi = 0;
            }
        }
        None
    }

    /// Iterates over set CPUs in ascending order (one load per word).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| {
            let mut bits = w.load(Ordering::SeqCst);
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(i * WORD + b)
            })
        })
    }

    /// The mask as a plain bit vector (for dumps).
    pub fn to_cpumask(&self) -> Cpumask {
        Cpumask {
            words: self
                .words
                .iter()
                .map(|w| w.load(Ordering::SeqCst))
                .collect(),
            nr_cpus: self.nr_cpus,
        }
    }
}

impl std::fmt::Debug for AtomicCpumask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_cpumask())
    }
}

/// A plain (non-atomic) cpumask, used for task affinity and dumps.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cpumask {
    words: Box<[u64]>,
    nr_cpus: usize,
}

impl Cpumask {
    /// An empty mask able to hold CPUs `0..nr_cpus`.
    pub fn new(nr_cpus: usize) -> Self {
        Self {
            words: vec![0; nr_cpus.div_ceil(WORD).max(1)].into_boxed_slice(),
            nr_cpus,
        }
    }

    /// A mask with every CPU `0..nr_cpus` set.
    pub fn full(nr_cpus: usize) -> Self {
        let mut m = Self::new(nr_cpus);
        for c in 0..nr_cpus {
            m.set(c);
        }
        m
    }

    /// A mask with the given CPUs set (ids `>= nr_cpus` are ignored).
    pub fn from_cpus(nr_cpus: usize, cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut m = Self::new(nr_cpus);
        for c in cpus {
            if c < nr_cpus {
                m.set(c);
            }
        }
        m
    }

    /// Number of CPUs the mask can hold.
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }

    /// Sets `cpu`.
    pub fn set(&mut self, cpu: usize) {
        assert!(cpu < self.nr_cpus, "cpu {cpu} out of mask range");
        self.words[cpu / WORD] |= 1 << (cpu % WORD);
    }

    /// Clears `cpu`.
    pub fn clear(&mut self, cpu: usize) {
        if cpu < self.nr_cpus {
            self.words[cpu / WORD] &= !(1 << (cpu % WORD));
        }
    }

    /// Whether `cpu` is set.
    pub fn test(&self, cpu: usize) -> bool {
        cpu < self.nr_cpus && self.words[cpu / WORD] & (1 << (cpu % WORD)) != 0
    }

    /// Number of set CPUs.
    pub fn weight(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether no CPU is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Lowest set CPU.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// Set CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(i * WORD + b)
            })
        })
    }
}

/// Kernel bitmap list format ("0-3,8,10-11"), as `%*pbl` prints it.
impl std::fmt::Display for Cpumask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut it = self.iter().peekable();
        while let Some(lo) = it.next() {
            let mut hi = lo;
            while it.peek() == Some(&(hi + 1)) {
                hi = it.next().unwrap_or(hi);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Cpumask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cpumask({self})")
    }
}

#[cfg(all(test, not(scx_rt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_clear_test_across_words() {
        let m = AtomicCpumask::new(1024);
        for c in [0, 63, 64, 511, 1023] {
            assert!(!m.test(c));
            m.set(c);
            assert!(m.test(c));
        }
        assert_eq!(m.weight(), 5);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 63, 64, 511, 1023]);
        assert!(m.test_and_clear(64));
        assert!(!m.test_and_clear(64));
        assert_eq!(m.first(), Some(0));
        assert_eq!(m.first_from(1), Some(63));
        assert_eq!(m.first_from(600), Some(1023));
        m.clear(1023);
        assert_eq!(m.first_from(600), Some(0), "wraps around");
        assert_eq!(m.to_cpumask().to_string(), "0,63,511");
    }

    #[test]
    fn fill_respects_width() {
        let m = AtomicCpumask::new(70);
        m.fill();
        assert_eq!(m.weight(), 70);
        assert_eq!(m.to_cpumask().to_string(), "0-69");
        m.clear_all();
        assert!(m.is_empty());
        assert_eq!(m.first(), None);
    }

    #[test]
    fn first_and_from() {
        let a = AtomicCpumask::new(130);
        let b = AtomicCpumask::new(130);
        a.set(3);
        a.set(129);
        b.set(129);
        b.set(5);
        assert_eq!(a.first_and_from(&b, 0), Some(129));
        b.set(3);
        assert_eq!(a.first_and_from(&b, 4), Some(129));
        assert_eq!(a.first_and_from(&b, 0), Some(3));
    }

    #[test]
    fn test_and_clear_hands_a_bit_to_exactly_one_thread() {
        for _ in 0..200 {
            let m = std::sync::Arc::new(AtomicCpumask::new(8));
            m.set(5);
            let winners: usize = (0..4)
                .map(|_| {
                    let m = m.clone();
                    std::thread::spawn(move || m.test_and_clear(5) as usize)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(winners, 1);
        }
    }

    #[test]
    fn plain_mask_display() {
        let m = Cpumask::from_cpus(16, [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(m.to_string(), "0-3,8,10-11");
        assert_eq!(m.weight(), 7);
        assert!(m.test(8) && !m.test(9) && !m.test(99));
    }

    #[test]
    fn find_from_visits_every_set_cpu_once_from_start_wrapping() {
        let m = AtomicCpumask::new(200);
        for c in [3, 64, 65, 130, 199] {
            m.set(c);
        }
        for start in [0, 3, 4, 64, 100, 131, 199, 250] {
            let mut seen = Vec::new();
            assert_eq!(
                m.find_from(start, |c| {
                    seen.push(c);
                    false
                }),
                None
            );
            let mut want: Vec<usize> = [3, 64, 65, 130, 199]
                .into_iter()
                .filter(|&c| c >= start % 200)
                .collect();
            want.extend(
                [3, 64, 65, 130, 199]
                    .into_iter()
                    .filter(|&c| c < start % 200),
            );
            assert_eq!(seen, want, "start {start}");
        }
        assert_eq!(m.find_from(66, |c| c % 2 == 1), Some(199));
        assert_eq!(AtomicCpumask::new(10).find_from(5, |_| true), None);
        let one = AtomicCpumask::new(8);
        one.set(1);
        one.set(5);
        let mut seen = Vec::new();
        one.find_from(3, |c| {
            seen.push(c);
            false
        });
        assert_eq!(seen, [5, 1]);
        assert_eq!(
            one.find_from(13, |c| c == 1),
            Some(1),
            "start past the end wraps"
        );
    }
}
