//! Randomness comes into the journal from outside, so the simulator and
//! tests can replay a run from one seed.

pub trait Entropy {
    fn fill(&mut self, dst: &mut [u8]);

    fn array<const N: usize>(&mut self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut a = [0; N];
        self.fill(&mut a);
        a
    }
}

/// The operating system's CSPRNG (through `rand`'s thread RNG).
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dst: &mut [u8]) {
        rand::fill(dst);
    }
}

/// A deterministic stream from a seed (blake3 in XOF mode), for tests and
/// simulation only: never for real keys.
pub struct SeededEntropy(blake3::OutputReader);

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("vellum seeded entropy v1");
        h.update(&seed.to_le_bytes());
        SeededEntropy(h.finalize_xof())
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, dst: &mut [u8]) {
        self.0.fill(dst);
    }
}
