//! Montgomery arithmetic modulo an odd multi-limb modulus, for RSA public-key operations.
//!
//! Why 27-bit limbs held in `u64`s: a 27×27-bit product is below 2⁵⁴, so a whole column of a
//! product-scanning (Comba) multiplication, up to 2·limbs products of the operands and of the
//! reduction, sums in one `u64` without carrying between limbs after every product. In Wasm,
//! where 64×64→128-bit products are emulated, that is much cheaper than 32-bit limbs, which
//! need the carry split off after each 32×32→64-bit product. Operations write into
//! caller-provided buffers ([`Scratch`]) so an exponentiation allocates nothing per step.
//! Only public data goes through here: nothing is constant time.

/// Bits per limb.
pub const LIMB_BITS: u32 = 27;
/// The low [`LIMB_BITS`] bits.
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;
/// Most limbs a modulus may have: a column sums at most 2·limbs products below 2⁵⁴ plus a
/// carry below 2³⁷, which stays below 2⁶⁴ for up to 511 limbs (13 797 bits).
pub const MAX_LIMBS: usize = 511;

/// An odd modulus with the constants Montgomery multiplication needs, computed once per key.
#[derive(Clone, PartialEq, Eq)]
pub struct Modulus {
    /// The modulus, least significant limb first, the top limb non-zero.
    n: Vec<u64>,
    /// `-n⁻¹ mod 2^LIMB_BITS`.
    n0_inv: u64,
    /// `R² mod n`, R = 2^(LIMB_BITS·limbs): one Montgomery product by it converts into
    /// Montgomery form.
    r2: Vec<u64>,
}

/// Work buffers for [`Modulus`] operations, sized once for a modulus.
pub struct Scratch {
    /// The reduction multipliers m_i of the product being computed.
    m: Vec<u64>,
}

impl Modulus {
    /// From little-endian limbs of [`LIMB_BITS`] bits. `None` unless the modulus is odd, above
    /// 1 (everything is 0 modulo 1, and [`r_squared`] starts from 1 < n), has a non-zero top
    /// limb (so that its length in limbs is its size), at most [`MAX_LIMBS`] limbs, and every
    /// limb below 2^LIMB_BITS.
    pub fn new(n: Vec<u64>) -> Option<Self> {
        if n.first().is_none_or(|low| low & 1 == 0)
            || n.last().is_none_or(|top| *top == 0)
            || n == [1]
            || n.len() > MAX_LIMBS
            || n.iter().any(|limb| *limb > LIMB_MASK)
        {
            return None;
        }
        let n0_inv = montgomery_inverse(n.first().copied().unwrap_or(1));
        let r2 = r_squared(&n);
        Some(Self { n, n0_inv, r2 })
    }

    /// Number of limbs of the modulus (and of every operand and result).
    pub fn limbs(&self) -> usize {
        self.n.len()
    }

    /// The modulus' limbs.
    pub fn value(&self) -> &[u64] {
        &self.n
    }

    /// Buffers for this modulus' operations.
    pub fn scratch(&self) -> Scratch {
        Scratch { m: vec![0; self.n.len()] }
    }

    /// `out = a·R mod n` (into Montgomery form), for `a < n`.
    pub fn to_montgomery(&self, out: &mut [u64], a: &[u64], scratch: &mut Scratch) {
        self.mul_into(out, a, &self.r2, scratch);
    }

    /// `out = a·R⁻¹ mod n` (out of Montgomery form), for `a < n`.
    pub fn from_montgomery(&self, out: &mut [u64], a: &[u64], scratch: &mut Scratch) {
        let mut one = vec![0u64; self.n.len()];
        if let Some(low) = one.first_mut() {
            *low = 1;
        }
        self.mul_into(out, a, &one, scratch);
    }

    /// Montgomery product `out = a·b·R⁻¹ mod n` for `a, b < n`, all of [`Self::limbs`] limbs
    /// (finely integrated product scanning: column by column, the product's and the
    /// reduction's terms summed together).
    pub fn mul_into(&self, out: &mut [u64], a: &[u64], b: &[u64], scratch: &mut Scratch) {
        self.product_scan(out, scratch, |column, low, high| {
            // a_j·b_(column−j) for j in low..high.
            let (a, b) = (&a[low..high], &b[column + 1 - high..column + 1 - low]);
            a.iter().zip(b.iter().rev()).map(|(x, y)| x * y).sum()
        });
    }

    /// Montgomery square `out = a²·R⁻¹ mod n` for `a < n`: each cross product `a_i·a_j` is
    /// computed once and doubled, half the products of [`Self::mul_into`]'s.
    pub fn square_into(&self, out: &mut [u64], a: &[u64], scratch: &mut Scratch) {
        self.product_scan(out, scratch, |column, low, high| {
            // a_j·a_(column−j) for j in low..high: pairs below the middle, doubled, and the
            // middle square when the column is even.
            let middle = column.div_ceil(2);
            let cross_high = middle.max(low).min(high);
            let (left, right) = (&a[low..cross_high], &a[column + 1 - cross_high..column + 1 - low]);
            let cross: u64 = left.iter().zip(right.iter().rev()).map(|(x, y)| x * y).sum();
            let square = if column % 2 == 0 && (low..high).contains(&(column / 2)) {
                let x = a[column / 2];
                x * x
            } else {
                0
            };
            2 * cross + square
        });
    }

    /// The column loop shared by [`Self::mul_into`] and [`Self::square_into`]: `terms(column,
    /// low, high)` is the sum of the operands' products `x_j·y_(column−j)` for j in
    /// low..high; the reduction's `m_j·n_(column−j)` are added here. Column i < limbs chooses
    /// m_i to clear its low limb; columns limbs.. are the result.
    fn product_scan(&self, out: &mut [u64], scratch: &mut Scratch, terms: impl Fn(usize, usize, usize) -> u64) {
        let n = self.n.as_slice();
        let k = n.len();
        let m = &mut scratch.m[..k];
        let out = &mut out[..k];
        let n0 = n.first().copied().unwrap_or(1);
        let mut acc = 0u64;
        for column in 0..k {
            acc += terms(column, 0, column + 1);
            let (known, rest) = m.split_at_mut(column);
            let reduction: u64 = known.iter().zip(n[1..=column].iter().rev()).map(|(m_j, n_j)| m_j * n_j).sum();
            acc += reduction;
            let m_i = (acc.wrapping_mul(self.n0_inv)) & LIMB_MASK;
            rest[0] = m_i;
            acc += m_i * n0;
            // The low limb is now zero: carry the rest into the next column.
            acc >>= LIMB_BITS;
        }
        for column in k..2 * k - 1 {
            let low = column + 1 - k;
            acc += terms(column, low, k);
            let reduction: u64 = m[low..].iter().zip(n[low..].iter().rev()).map(|(m_j, n_j)| m_j * n_j).sum();
            acc += reduction;
            out[low - 1] = acc & LIMB_MASK;
            acc >>= LIMB_BITS;
        }
        out[k - 1] = acc & LIMB_MASK;
        // The result, out + (acc >> LIMB_BITS)·R, is below 2n: one subtraction at most.
        if acc >> LIMB_BITS != 0 || !less_than(out, n) {
            subtract_in_place(out, n);
        }
    }
}

/// Whether `a < b`, both of the same number of limbs.
pub fn less_than(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo 2^(LIMB_BITS·limbs).
fn subtract_in_place(a: &mut [u64], b: &[u64]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let diff = x.wrapping_sub(y).wrapping_sub(borrow);
        *x = diff & LIMB_MASK;
        borrow = diff >> 63;
    }
}

/// `-x⁻¹ mod 2^LIMB_BITS` for odd `x` (Newton's iteration doubles the correct bits each step).
fn montgomery_inverse(x: u64) -> u64 {
    let mut inverse: u64 = 1;
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg() & LIMB_MASK
}

/// `R² mod n` by doubling 1 modulo `n`, 2·LIMB_BITS·k times (once per key, at configuration).
fn r_squared(n: &[u64]) -> Vec<u64> {
    let k = n.len();
    let mut x = vec![0u64; k];
    if let Some(low) = x.first_mut() {
        *low = 1;
    }
    for _ in 0..(2 * LIMB_BITS as usize * k) {
        let mut carry = 0u64;
        for limb in x.iter_mut() {
            let doubled = (*limb << 1) | carry;
            *limb = doubled & LIMB_MASK;
            carry = doubled >> LIMB_BITS;
        }
        if carry != 0 || !less_than(&x, n) {
            subtract_in_place(&mut x, n);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: reproducible pseudo-random limbs without a dependency.
    struct Limbs(u64);

    impl Limbs {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
        }

        fn take(&mut self, count: usize) -> Vec<u64> {
            (0..count).map(|_| u64::from(self.next()) & LIMB_MASK).collect()
        }
    }

    /// `x mod n` by binary long division, for a wide `x` (the slow, obviously right way).
    fn reference_mod(x: &[u64], n: &[u64]) -> Vec<u64> {
        let width = LIMB_BITS as usize;
        let mut r = vec![0u64; n.len()];
        for bit in (0..width * x.len()).rev() {
            let mut carry = (x[bit / width] >> (bit % width)) & 1;
            for limb in r.iter_mut() {
                let doubled = (*limb << 1) | carry;
                *limb = doubled & LIMB_MASK;
                carry = doubled >> LIMB_BITS;
            }
            if carry != 0 || !less_than(&r, n) {
                subtract_in_place(&mut r, n);
            }
        }
        r
    }

    /// `a·b mod n` by schoolbook product then [`reference_mod`].
    fn reference_mul_mod(a: &[u64], b: &[u64], n: &[u64]) -> Vec<u64> {
        let mut product = vec![0u64; a.len() + b.len()];
        for (i, &a_i) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &b_j) in b.iter().enumerate() {
                let sum = product[i + j] + a_i * b_j + carry;
                product[i + j] = sum & LIMB_MASK;
                carry = sum >> LIMB_BITS;
            }
            product[i + b.len()] = carry;
        }
        reference_mod(&product, n)
    }

    /// Moduli of several sizes, including the extremes (all ones; just over a power of 2) and
    /// RSA's 2048 bits, each with operands below it: random ones and 0, 1, n - 1.
    fn cases() -> Vec<(Modulus, Vec<Vec<u64>>)> {
        let mut random = Limbs(0x9e37_79b9_7f4a_7c15);
        let mut moduli = vec![vec![LIMB_MASK; 4], vec![1, 0, 0, 1 << 26], vec![0x7ff_fffb]];
        for k in [1, 2, 3, 5, 16, 76] {
            let mut n = random.take(k);
            n[0] |= 1;
            n[k - 1] |= 1 << 26;
            moduli.push(n);
            let mut small_top = random.take(k);
            small_top[0] |= 1;
            small_top[k - 1] = 1;
            if k == 1 {
                small_top[0] = 3;
            }
            moduli.push(small_top);
        }
        moduli
            .into_iter()
            .map(|n| {
                let k = n.len();
                let mut n_minus_1 = n.clone();
                n_minus_1[0] -= 1;
                let mut one = vec![0u64; k];
                one[0] = 1;
                let mut operands = vec![vec![0u64; k], one, n_minus_1];
                operands.extend((0..6).map(|_| reference_mod(&random.take(k), &n)));
                (Modulus::new(n).unwrap(), operands)
            })
            .collect()
    }

    #[test]
    fn square_equals_multiplication_by_itself() {
        for (modulus, operands) in cases() {
            let k = modulus.limbs();
            let mut scratch = modulus.scratch();
            for a in &operands {
                let (mut squared, mut multiplied) = (vec![0u64; k], vec![0u64; k]);
                modulus.square_into(&mut squared, a, &mut scratch);
                modulus.mul_into(&mut multiplied, a, a, &mut scratch);
                assert_eq!(squared, multiplied, "k={k} a={a:x?}");
                assert!(less_than(&squared, modulus.value()));
            }
        }
    }

    #[test]
    fn montgomery_round_trip_and_products_match_the_reference() {
        for (modulus, operands) in cases() {
            let k = modulus.limbs();
            let n = modulus.value().to_vec();
            let mut scratch = modulus.scratch();
            let mut r = vec![0u64; k + 1];
            r[k] = 1;
            assert_eq!(modulus.r2, reference_mul_mod(&reference_mod(&r, &n), &reference_mod(&r, &n), &n));
            for a in &operands {
                let (mut a_mont, mut back) = (vec![0u64; k], vec![0u64; k]);
                modulus.to_montgomery(&mut a_mont, a, &mut scratch);
                assert_eq!(a_mont, reference_mul_mod(a, &reference_mod(&r, &n), &n), "a·R mod n");
                modulus.from_montgomery(&mut back, &a_mont, &mut scratch);
                assert_eq!(&back, a, "round trip, k={k}");
                for b in &operands {
                    let expected = reference_mul_mod(a, b, &n);
                    let (mut b_mont, mut product, mut plain) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
                    modulus.to_montgomery(&mut b_mont, b, &mut scratch);
                    modulus.mul_into(&mut product, &a_mont, &b_mont, &mut scratch);
                    modulus.from_montgomery(&mut plain, &product, &mut scratch);
                    assert_eq!(plain, expected, "a·b in Montgomery form, k={k}");
                    // One operand in Montgomery form, one not: the product comes out plain.
                    modulus.mul_into(&mut product, &a_mont, b, &mut scratch);
                    assert_eq!(product, expected, "a·R · b · R⁻¹, k={k}");
                }
                let mut squared = vec![0u64; k];
                modulus.square_into(&mut squared, &a_mont, &mut scratch);
                modulus.from_montgomery(&mut back, &squared, &mut scratch);
                assert_eq!(back, reference_mul_mod(a, a, &n), "a² in Montgomery form, k={k}");
            }
        }
    }

    #[test]
    fn moduli_refused_and_helpers() {
        assert!(Modulus::new(vec![]).is_none());
        assert!(Modulus::new(vec![2, 1]).is_none(), "even");
        assert!(Modulus::new(vec![3, 0]).is_none(), "top limb zero");
        assert!(Modulus::new(vec![1]).is_none(), "one");
        assert!(Modulus::new(vec![1 << 27]).is_none(), "limb too wide");
        assert!(Modulus::new(vec![1; MAX_LIMBS + 1]).is_none(), "too many limbs");
        for x in [1u64, 3, LIMB_MASK, 0x234_5677] {
            assert_eq!(x.wrapping_mul(montgomery_inverse(x).wrapping_neg()) & LIMB_MASK, 1);
        }
        assert!(less_than(&[1, 2], &[0, 3]));
        assert!(!less_than(&[0, 3], &[1, 2]));
        assert!(!less_than(&[5, 5], &[5, 5]));
        let mut x = vec![0, 1];
        subtract_in_place(&mut x, &[1, 0]);
        assert_eq!(x, vec![LIMB_MASK, 0], "borrow crosses limbs");
    }

    /// The largest modulus with every limb all ones, and operands n − 1 and one below it with
    /// all limbs ones: the column sums reach their largest and must not overflow.
    #[test]
    fn largest_columns_do_not_overflow() {
        let k = MAX_LIMBS;
        let n = vec![LIMB_MASK; k];
        let modulus = Modulus::new(n.clone()).unwrap();
        let mut scratch = modulus.scratch();
        let mut n_minus_1 = n.clone();
        n_minus_1[0] -= 1;
        let mut n_minus_2 = n.clone();
        n_minus_2[0] -= 2;
        for a in [&n_minus_1, &n_minus_2] {
            let (mut squared, mut multiplied, mut back) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
            modulus.square_into(&mut squared, a, &mut scratch);
            modulus.mul_into(&mut multiplied, a, a, &mut scratch);
            assert_eq!(squared, multiplied);
            // (n − x)² ≡ x² (mod n), and x² is small: checks the value, not just agreement.
            let x = if a == &n_minus_1 { 1 } else { 4 };
            let mut expected_plain = vec![0u64; k];
            expected_plain[0] = x;
            let mut a_mont = vec![0u64; k];
            modulus.to_montgomery(&mut a_mont, a, &mut scratch);
            modulus.square_into(&mut squared, &a_mont, &mut scratch);
            modulus.from_montgomery(&mut back, &squared, &mut scratch);
            assert_eq!(back, expected_plain);
        }
    }
}
