//! `application/x-www-form-urlencoded` (and query strings): `a=1&b=2` into decoded pairs.

use crate::transform::url_decode;

/// The decoded `(name, value)` pairs of `text`; empty pieces (`a=1&&b=2`) are skipped, a piece
/// without `=` is a name with an empty value.
pub fn parse_pairs(text: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    text.split(|&b| b == b'&').filter(|piece| !piece.is_empty()).map(|piece| {
        match piece.iter().position(|&b| b == b'=') {
            Some(at) => (
                url_decode(piece.get(..at).unwrap_or_default(), false),
                url_decode(piece.get(at + 1..).unwrap_or_default(), false),
            ),
            None => (url_decode(piece, false), Vec::new()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_once() {
        let pairs: Vec<_> = parse_pairs(b"q=a+b%2527&&empty=&flag&x%3D=1=2").collect();
        assert_eq!(
            pairs,
            vec![
                (b"q".to_vec(), b"a b%27".to_vec()),
                (b"empty".to_vec(), b"".to_vec()),
                (b"flag".to_vec(), b"".to_vec()),
                (b"x=".to_vec(), b"1=2".to_vec()),
            ]
        );
    }
}
