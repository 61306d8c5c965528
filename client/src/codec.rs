//! Memcomparable byte encoding, the same as TiKV's `EncodeBytes` / TinyKV's `codec.EncodeBytes`.
//!
//! In transactional mode region boundaries live in this encoded key space, so the client encodes a
//! user key before asking PD for its region and decodes the bounds PD returns. The encoding keeps
//! the byte order of the original keys (`a < b` iff `enc(a) < enc(b)`), and no encoded key is a
//! prefix of another.
//!
//! Layout: the key is cut into 8-byte groups; each group is written padded with zeros to 8 bytes
//! and followed by a marker byte `0xFF - padding`. A group of 8 real bytes has marker `0xFF` and
//! is always followed by another group, so a key whose length is a multiple of 8 ends with an
//! all-padding group (marker `0xF7`).

use crate::errors::{Error, Result};

const GROUP_SIZE: usize = 8;
const MARKER: u8 = 0xFF;
const PAD: u8 = 0;

/// Encodes `key` into its memcomparable form.
pub fn encode_bytes(key: &[u8]) -> Vec<u8> {
    let groups = key.len() / GROUP_SIZE + 1;
    let mut out = Vec::with_capacity(groups * (GROUP_SIZE + 1));
    for chunk_start in (0..groups).map(|g| g * GROUP_SIZE) {
        let chunk = &key[chunk_start.min(key.len())..(chunk_start + GROUP_SIZE).min(key.len())];
        let pad = GROUP_SIZE - chunk.len();
        out.extend_from_slice(chunk);
        out.resize(out.len() + pad, PAD);
        out.push(MARKER - pad as u8);
    }
    out
}

/// Decodes a memcomparable-encoded key. The whole input must be one encoded key: trailing bytes
/// (such as a timestamp suffix) are an error, because a bound like `enc(k) + ts` does not equal
/// `enc(k)` and silently dropping the suffix would route keys to the wrong region.
pub fn decode_bytes(data: &[u8]) -> Result<Vec<u8>> {
    let err = |reason| Error::Codec {
        bytes: data.to_vec(),
        reason,
    };
    let mut out = Vec::with_capacity(data.len() / (GROUP_SIZE + 1) * GROUP_SIZE);
    let mut rest = data;
    loop {
        if rest.len() < GROUP_SIZE + 1 {
            return Err(err("unexpected end of input"));
        }
        let (group, tail) = rest.split_at(GROUP_SIZE + 1);
        rest = tail;
        let pad = (MARKER - group[GROUP_SIZE]) as usize;
        if pad == 0 {
            out.extend_from_slice(&group[..GROUP_SIZE]);
            continue;
        }
        if pad > GROUP_SIZE {
            return Err(err("invalid group marker"));
        }
        let real = GROUP_SIZE - pad;
        if group[real..GROUP_SIZE].iter().any(|&b| b != PAD) {
            return Err(err("non-zero padding"));
        }
        out.extend_from_slice(&group[..real]);
        if !rest.is_empty() {
            return Err(err("trailing bytes after the encoded key"));
        }
        return Ok(out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_vectors() {
        // Vectors from TiKV's codec tests.
        let cases: &[(&[u8], &[u8])] = &[
            (b"", &[0, 0, 0, 0, 0, 0, 0, 0, 0xF7]),
            (&[1, 2, 3], &[1, 2, 3, 0, 0, 0, 0, 0, 0xFA]),
            (&[1, 2, 3, 0], &[1, 2, 3, 0, 0, 0, 0, 0, 0xFB]),
            (
                &[1, 2, 3, 4, 5, 6, 7, 8],
                &[1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0xF7],
            ),
            (
                &[1, 2, 3, 4, 5, 6, 7, 8, 9],
                &[1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 9, 0, 0, 0, 0, 0, 0, 0, 0xF8],
            ),
        ];
        for (raw, enc) in cases {
            assert_eq!(encode_bytes(raw), *enc, "encode {raw:?}");
            assert_eq!(decode_bytes(enc).unwrap(), *raw, "decode {enc:?}");
        }
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let bad: &[&[u8]] = &[
            b"",
            b"y",
            &[1, 2, 3, 0, 0, 0, 0, 0],       // no marker
            &[1, 2, 3, 0, 0, 0, 0, 0, 0xF0], // pad 15
            &[1, 2, 3, 0, 0, 0, 0, 1, 0xFA], // non-zero padding
            &[1, 2, 3, 0, 0, 0, 0, 0, 0xFA, 0, 0, 0, 0, 0, 0, 0, 1], // ts suffix
            &[1, 2, 3, 4, 5, 6, 7, 8, 0xFF], // missing final group
        ];
        for b in bad {
            assert!(matches!(decode_bytes(b), Err(Error::Codec { .. })), "{b:?}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(key in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(decode_bytes(&encode_bytes(&key)).unwrap(), key);
        }

        #[test]
        fn preserves_order(
            a in proptest::collection::vec(any::<u8>(), 0..24),
            b in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            prop_assert_eq!(a.cmp(&b), encode_bytes(&a).cmp(&encode_bytes(&b)));
        }
    }
}
