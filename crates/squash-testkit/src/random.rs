//! The deterministic generators every test, fuzz case and bench image is made from, so that a
//! failing seed reproduces exactly: [`Rng`] (xorshift64*) for choices, [`Noise`] (xorshift64)
//! for bytes that do not compress.

/// xorshift64*: choices from a seed.
#[derive(Debug, Clone)]
pub struct Rng(pub(crate) u64);

impl Rng {
    /// A generator from `seed`, scrambled so that nearby seeds start far apart.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    /// One of `items`, or `None` when there is none.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())].clone())
    }
}

/// xorshift64: a stream of bytes that do not compress.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next byte: the low byte of one step.
    pub fn byte(&mut self) -> u8 {
        self.step() as u8
    }

    /// Fills `buf` eight bytes a step (little-endian), for large contents.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.step().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes from `seed`, for incompressible test content.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    (0..len).map(|_| noise.byte()).collect()
}
