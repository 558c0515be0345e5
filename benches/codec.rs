//! Codec micro-benchmark: encode and decode throughput per message size
//! (decode one frame per call, and drain: a whole read per pass, as the
//! receiving thread does), beside a plain copy of the same bytes as the
//! ceiling.

use std::hint::black_box;

use chat::frame::{FrameReader, encode_frame};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// About this many payload bytes per iteration, whatever the message size.
const BATCH: usize = 1 << 20;
const MAX: usize = 1 << 20;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for size in [16usize, 64, 1024, 64 * 1024] {
        let message = vec![b'x'; size];
        let count = BATCH / size;
        let mut encoded = Vec::new();
        for _ in 0..count {
            encode_frame(&mut encoded, &message, MAX).unwrap();
        }
        group.throughput(Throughput::Bytes((count * size) as u64));

        group.bench_with_input(BenchmarkId::new("encode", size), &message, |b, message| {
            let mut out = Vec::with_capacity(encoded.len());
            b.iter(|| {
                out.clear();
                for _ in 0..count {
                    encode_frame(&mut out, black_box(message), MAX).unwrap();
                }
                black_box(out.len())
            });
        });

        group.bench_with_input(BenchmarkId::new("decode", size), &encoded, |b, encoded| {
            b.iter(|| {
                let mut reader = FrameReader::new(black_box(&encoded[..]), MAX);
                let mut total = 0;
                while let Some(payload) = reader.read_frame().unwrap() {
                    total += payload.len();
                }
                assert_eq!(total, count * size);
                total
            });
        });

        // What the receiving thread does: every frame of a read in one pass.
        group.bench_with_input(BenchmarkId::new("drain", size), &encoded, |b, encoded| {
            b.iter(|| {
                let mut reader = FrameReader::new(black_box(&encoded[..]), MAX);
                let mut total = 0;
                while reader.fill().unwrap() > 0 {
                    reader
                        .drain_buffered(|payload| total += payload.len())
                        .unwrap();
                }
                assert_eq!(total, count * size);
                total
            });
        });

        group.bench_with_input(BenchmarkId::new("copy", size), &encoded, |b, encoded| {
            let mut out = Vec::with_capacity(encoded.len());
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(encoded));
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
