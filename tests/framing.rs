//! The frame codec: round trips under any chunking, clean and unclean ends,
//! limits checked before allocation, and arbitrary bytes never panicking.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, ErrorKind, Read};

use chat::frame::{FrameReader, READ_CHUNK, encode_frame};
use proptest::prelude::*;

/// Records the largest allocation made on each thread, so a test can see what
/// the code under test asked for without other tests' threads interfering.
struct TrackLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for TrackLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: TrackLargest = TrackLargest;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

/// Hands out its bytes in the given chunk sizes, cycling through them.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        Self {
            data,
            sizes,
            next: 0,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn encode_all(messages: &[Vec<u8>], max: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in messages {
        encode_frame(&mut bytes, message, max).unwrap();
    }
    bytes
}

fn decode_all(reader: &mut FrameReader<impl Read>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while let Some(payload) = reader.read_frame()? {
        out.push(payload.to_vec());
    }
    Ok(out)
}

proptest! {
    #[test]
    fn round_trip_under_any_chunking(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..40),
        sizes in prop::collection::vec(1usize..5000, 1..8),
    ) {
        let bytes = encode_all(&messages, 4096);
        let mut reader = FrameReader::new(Chunked::new(&bytes, sizes), 4096);
        let decoded = decode_all(&mut reader).unwrap();
        let expected: Vec<Vec<u8>> = messages.into_iter().filter(|m| !m.is_empty()).collect();
        prop_assert_eq!(decoded, expected);
    }

    /// Arbitrary bytes after a valid prefix: the prefix decodes exactly, nothing
    /// panics, and the reader never holds more than the maximum plus its read
    /// buffer.
    #[test]
    fn arbitrary_bytes_never_panic_and_valid_prefixes_decode(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..10),
        garbage in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(1usize..700, 1..6),
        max in 1usize..400_000,
    ) {
        let messages: Vec<Vec<u8>> = messages.into_iter().filter(|m| m.len() <= max).collect();
        let mut bytes = encode_all(&messages, max);
        bytes.extend_from_slice(&garbage);
        let ((prefix, capacity), largest) = largest_allocation(|| {
            let mut reader = FrameReader::new(Chunked::new(&bytes, sizes), max);
            let mut prefix = Vec::new();
            for _ in 0..messages.len() {
                prefix.push(reader.read_frame().unwrap().unwrap().to_vec());
            }
            // Whatever the garbage says, reading on ends in a frame, an end or
            // an error, never a panic.
            while let Ok(Some(_)) = reader.read_frame() {}
            (prefix, reader.capacity())
        });
        prop_assert_eq!(prefix, messages);
        let bound = READ_CHUNK.max(max + 4);
        prop_assert!(capacity <= bound, "capacity {} over {}", capacity, bound);
        prop_assert!(largest <= bound + 4096, "allocated {} (bound {})", largest, bound);
    }
}

#[test]
fn one_byte_per_read() {
    let messages = vec![
        b"hi".to_vec(),
        "你好 🎉".as_bytes().to_vec(),
        vec![7; 70_000],
    ];
    let bytes = encode_all(&messages, 1 << 20);
    let mut reader = FrameReader::new(Chunked::new(&bytes, vec![1]), 1 << 20);
    assert_eq!(decode_all(&mut reader).unwrap(), messages);
}

#[test]
fn protocol_examples_are_encoded_exactly() {
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, b"hi", 10).unwrap();
    assert_eq!(bytes, [0, 0, 0, 2, 0x68, 0x69]);
    bytes.clear();
    encode_frame(&mut bytes, "你好".as_bytes(), 10).unwrap();
    assert_eq!(bytes, [0, 0, 0, 6, 0xe4, 0xbd, 0xa0, 0xe5, 0xa5, 0xbd]);
}

#[test]
fn clean_end_only_at_a_frame_boundary() {
    let mut empty = FrameReader::new(&[][..], 100);
    assert!(empty.read_frame().unwrap().is_none());

    for cut in [
        &[0u8, 0, 0][..],
        &[0, 0, 0, 5, b'a', b'b'][..],
        &[0, 0, 0, 1, b'x', 0][..],
    ] {
        let mut reader = FrameReader::new(cut, 100);
        let mut result = reader.read_frame().map(|f| f.map(<[u8]>::to_vec));
        if let Ok(Some(_)) = result {
            result = reader.read_frame().map(|f| f.map(<[u8]>::to_vec));
        }
        let err = result.expect_err("end of stream mid-frame is an error");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{cut:?}");
        assert_eq!(err.to_string(), "connection closed mid-message");
    }
}

#[test]
fn oversize_header_is_rejected_before_allocating() {
    for header in [[0xff; 4], (1_048_577u32).to_be_bytes()] {
        // The payload that would follow is never read.
        let mut stream = header.to_vec();
        stream.extend_from_slice(b"never read");
        let (result, largest) = largest_allocation(|| {
            let mut reader = FrameReader::new(&stream[..], 1 << 20);
            let err = reader.read_frame().map(|_| ()).unwrap_err();
            (err, reader.buffered())
        });
        let (err, buffered) = result;
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("over the maximum of 1048576 bytes"),
            "{err}"
        );
        assert!(largest <= READ_CHUNK + 1024, "allocated {largest} bytes");
        assert_eq!(buffered, stream.len(), "payload left unconsumed");
    }
}

#[test]
fn zero_length_frames_are_skipped() {
    let mut bytes = Vec::new();
    for _ in 0..10_000 {
        encode_frame(&mut bytes, b"", 10).unwrap();
    }
    encode_frame(&mut bytes, b"after", 10).unwrap();
    encode_frame(&mut bytes, b"", 10).unwrap();
    let mut reader = FrameReader::new(Chunked::new(&bytes, vec![3, 1000]), 10);
    assert_eq!(decode_all(&mut reader).unwrap(), vec![b"after".to_vec()]);
}

#[test]
fn sending_over_the_maximum_is_refused_and_changes_nothing() {
    let mut bytes = b"kept".to_vec();
    let err = encode_frame(&mut bytes, &[0; 11], 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "message of 11 bytes is over the maximum of 10 bytes"
    );
    assert_eq!(bytes, b"kept");
    encode_frame(&mut bytes, &[0; 10], 10).unwrap();
    assert_eq!(bytes.len(), 4 + 4 + 10);
}

/// Decodes a whole read at a time with `drain_buffered`, as the receiving
/// thread does: every frame, then how it ended.
fn drain_all(reader: &mut FrameReader<impl Read>) -> (Vec<Vec<u8>>, Result<(), ErrorKind>) {
    let mut out = Vec::new();
    loop {
        if reader
            .drain_buffered(|payload| out.push(payload.to_vec()))
            .is_err()
        {
            return (out, Err(ErrorKind::InvalidData));
        }
        match reader.fill() {
            Ok(0) => return (out, reader.end_of_stream().map_err(|e| e.kind())),
            Ok(_) => {}
            Err(e) => return (out, Err(e.kind())),
        }
    }
}

/// Decodes one frame per call with `read_frame`: the reference.
fn one_at_a_time(reader: &mut FrameReader<impl Read>) -> (Vec<Vec<u8>>, Result<(), ErrorKind>) {
    let mut out = Vec::new();
    loop {
        match reader.read_frame() {
            Ok(Some(payload)) => out.push(payload.to_vec()),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e.kind())),
        }
    }
}

proptest! {
    /// Whole reads at a time give exactly what one frame per call gives:
    /// the same frames in the same order, and the same end (clean, cut off
    /// mid-frame, or a header over the maximum), under any chunking.
    #[test]
    fn draining_whole_reads_matches_one_frame_at_a_time(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 0..40),
        tail in prop::collection::vec(any::<u8>(), 0..12),
        sizes in prop::collection::vec(1usize..3000, 1..6),
        max in 1usize..1000,
    ) {
        let messages: Vec<Vec<u8>> = messages.into_iter().filter(|m| m.len() <= max).collect();
        let mut bytes = encode_all(&messages, max);
        bytes.extend_from_slice(&tail);
        let drained = drain_all(&mut FrameReader::new(Chunked::new(&bytes, sizes.clone()), max));
        let reference = one_at_a_time(&mut FrameReader::new(Chunked::new(&bytes, sizes), max));
        prop_assert_eq!(&drained, &reference);
        let expected: Vec<Vec<u8>> = messages.into_iter().filter(|m| !m.is_empty()).collect();
        prop_assert_eq!(&drained.0[..expected.len()], &expected[..]);
    }
}
