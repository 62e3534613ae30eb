//! A minimal HPACK encoder (RFC 7541) for request headers, written without a library so the
//! tests control every byte: integers with an N-bit prefix and literal fields without
//! indexing or Huffman coding. Responses are not decoded.

use bytes::{BufMut, Bytes, BytesMut};

/// Appends `value` as an HPACK integer with an `prefix_bits`-bit prefix (RFC 7541 §5.1);
/// `first_byte` holds the bits above the prefix (e.g. the H flag).
pub fn encode_hpack_int(out: &mut BytesMut, value: usize, prefix_bits: u8, first_byte: u8) {
    assert!((1..=8).contains(&prefix_bits), "prefix must be 1..=8 bits");
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        // Fits in the prefix: value < max_prefix <= 255.
        out.put_u8(first_byte | value as u8);
        return;
    }
    out.put_u8(first_byte | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 128 {
        out.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.put_u8(rest as u8);
}

/// HPACK-encodes headers as "Literal Header Field without Indexing — New Name"
/// (RFC 7541 §6.2.2), no Huffman coding, no table use: `0x00`, name length (7-bit prefix),
/// name, value length (7-bit prefix), value. Names are sent as given (HTTP/2 wants them
/// lowercase).
pub fn encode_headers<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)]) -> Bytes {
    let mut out = BytesMut::new();
    for (name, value) in headers {
        let (name, value) = (name.as_ref().as_bytes(), value.as_ref().as_bytes());
        out.put_u8(0x00);
        encode_hpack_int(&mut out, name.len(), 7, 0x00);
        out.put_slice(name);
        encode_hpack_int(&mut out, value.len(), 7, 0x00);
        out.put_slice(value);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(value: usize, prefix: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_hpack_int(&mut out, value, prefix, 0);
        out.to_vec()
    }

    #[test]
    fn hpack_integers_rfc7541_c1() {
        // C.1.1: 10 with a 5-bit prefix.
        assert_eq!(int(10, 5), [0b0000_1010]);
        // C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(int(1337, 5), [31, 154, 10]);
        // C.1.3: 42 starting at an octet boundary.
        assert_eq!(int(42, 8), [42]);
        // Boundaries of the 7-bit prefix used for string lengths.
        assert_eq!(int(126, 7), [126]);
        assert_eq!(int(127, 7), [127, 0]);
        assert_eq!(int(128, 7), [127, 1]);
        assert_eq!(int(255, 7), [127, 128, 1]);
        // Flag bits above the prefix are kept.
        let mut out = BytesMut::new();
        encode_hpack_int(&mut out, 3, 7, 0x80);
        assert_eq!(out.as_ref(), [0x83]);
    }

    #[test]
    fn hpack_literal_without_indexing() {
        // RFC 7541 C.2.2 uses a indexed name; this is the new-name form of the same field.
        assert_eq!(
            encode_headers(&[(":path", "/a")]).as_ref(),
            b"\x00\x05:path\x02/a"
        );
        let long = "x".repeat(200);
        let block = encode_headers(&[("k", long.as_str())]);
        assert_eq!(&block[..5], b"\x00\x01k\x7f\x49"); // 200 = 127 + 73
        assert_eq!(block.len(), 5 + 200);
    }
}
