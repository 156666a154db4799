//! Unit tests: known vectors for every digest, the hex and base64 helpers, and properties
//! showing that streaming in any chunking equals one-shot hashing.

use std::io::{self, Read};

use proptest::prelude::*;

use super::*;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EMPTY_SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const ABC_SHA1: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";

#[test]
fn empty_input_vectors() {
    let d = digest(b"");
    assert_eq!(d.sha256_hex(), EMPTY_SHA256);
    assert_eq!(d.sha1_hex(), EMPTY_SHA1);
    assert_eq!(d.crc32c, 0);
    assert_eq!(d.crc32c_base64(), "AAAAAA==");
    assert_eq!(d.len, 0);
    assert_eq!(Hasher::new().finish(), d);
}

#[test]
fn abc_vectors() {
    let d = digest(b"abc");
    assert_eq!(d.sha256_hex(), ABC_SHA256);
    assert_eq!(d.sha1_hex(), ABC_SHA1);
    assert_eq!(d.crc32c, 0x364B_3FB7);
    assert_eq!(d.crc32c_base64(), "Nks/tw==");
    assert_eq!(d.len, 3);
}

#[test]
fn crc32c_check_value() {
    // The standard CRC-32C check value (RFC 3720 appendix B.4 parameters).
    let d = digest(b"123456789");
    assert_eq!(d.crc32c, 0xE306_9283);
    assert_eq!(d.crc32c_base64(), "4waSgw==");
    assert_eq!(
        d.sha256_hex(),
        "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
    );
    assert_eq!(d.sha1_hex(), "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
}

#[test]
fn base64_rfc4648_vectors() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, want) in cases {
        assert_eq!(base64(input.as_bytes()), want, "input {input:?}");
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
}

#[test]
fn hex_round_trips_and_rejects_bad_input() {
    assert_eq!(hex(&[]), "");
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    assert_eq!(parse_hex::<4>("000fa5ff"), Some([0x00, 0x0f, 0xa5, 0xff]));
    assert_eq!(parse_hex::<4>("000FA5FF"), Some([0x00, 0x0f, 0xa5, 0xff]));
    assert_eq!(parse_hex::<0>(""), Some([]));
    assert_eq!(parse_hex::<4>("000fa5f"), None, "too short");
    assert_eq!(parse_hex::<4>("000fa5fff"), None, "too long");
    assert_eq!(parse_hex::<4>("000fa5fg"), None, "not hex");
    assert_eq!(parse_hex::<2>("+1ab"), None, "sign is not a digit");
    // Multi-byte UTF-8 must be rejected, not split mid-character.
    assert_eq!(parse_hex::<2>("é12"), None);

    let d = digest(b"abc");
    assert_eq!(parse_hex::<32>(&d.sha256_hex()), Some(d.sha256));
    assert_eq!(parse_hex::<20>(&d.sha1_hex()), Some(d.sha1));
}

#[test]
fn io_copy_into_hasher() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1_000_000).collect();
    let mut h = Hasher::new();
    let copied = io::copy(&mut &data[..], &mut h).unwrap();
    assert_eq!(copied, data.len() as u64);
    assert_eq!(h.finish(), digest(&data));
}

#[test]
fn clone_forks_the_state() {
    let mut a = Hasher::new();
    a.update(b"ab");
    let mut b = a.clone();
    a.update(b"c");
    b.update(b"x");
    assert_eq!(a.finish(), digest(b"abc"));
    assert_eq!(b.finish(), digest(b"abx"));
}

#[test]
fn debug_shows_length_only() {
    let mut h = Hasher::new();
    h.update(b"abc");
    assert_eq!(format!("{h:?}"), "Hasher { len: 3, .. }");
}

/// Yields its data in reads of at most `max` bytes and fails with `Interrupted` before
/// every read listed in `interrupt_at`.
struct FlakyReader<'a> {
    data: &'a [u8],
    max: usize,
    calls: usize,
    interrupt_at: &'a [usize],
}

impl Read for FlakyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let call = self.calls;
        self.calls += 1;
        if self.interrupt_at.contains(&call) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = self.data.len().min(buf.len()).min(self.max);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn hash_reader_retries_interrupted() {
    let data = b"the quick brown fox jumps over the lazy dog";
    let reader = FlakyReader {
        data,
        max: 7,
        calls: 0,
        // First read, one in the middle, and the read that would return end of file.
        interrupt_at: &[0, 3, 8],
    };
    assert_eq!(hash_reader(reader).unwrap(), digest(data));
}

#[test]
fn hash_reader_reports_other_errors() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let err = hash_reader(Broken).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn hash_reader_larger_than_buffer() {
    // Crosses several buffer refills, including a partial last one.
    let data: Vec<u8> = (0..BUFFER_SIZE * 3 + 12345)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    assert_eq!(hash_reader(&data[..]).unwrap(), digest(&data));
}

/// Splits `data` at the given cut points (taken modulo the length, then sorted).
fn chunks<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        out.push(&data[start..cut]);
        start = cut;
    }
    out.push(&data[start..]);
    out
}

proptest! {
    #[test]
    fn streaming_equals_one_shot(
        data in proptest::collection::vec(any::<u8>(), 0..64 * 1024),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut h = Hasher::new();
        for chunk in chunks(&data, &cuts) {
            h.update(chunk);
        }
        let want = digest(&data);
        prop_assert_eq!(want.len, data.len() as u64);
        prop_assert_eq!(h.finish(), want);
    }

    #[test]
    fn hash_reader_equals_digest(
        data in proptest::collection::vec(any::<u8>(), 0..64 * 1024),
        max in 1usize..10_000,
        interrupt_at in proptest::collection::vec(0usize..40, 0..4),
    ) {
        let reader = FlakyReader { data: &data, max, calls: 0, interrupt_at: &interrupt_at };
        prop_assert_eq!(hash_reader(reader).unwrap(), digest(&data));
    }

    #[test]
    fn hex_round_trip(bytes in any::<[u8; 20]>()) {
        prop_assert_eq!(parse_hex::<20>(&hex(&bytes)), Some(bytes));
    }
}
