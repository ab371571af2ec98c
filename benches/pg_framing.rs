//! Parse (micro-benchmark): the per-message work on the relay's hot path in
//! the sans-IO crate: splitting a read buffer into frames, and renaming the
//! statement of a Bind as transaction pooling does for prepared statements.
//!
//! Run: `cargo bench -p attache-postgres-protocol --bench pg_framing`.
//! The numbers tell whether framing can matter next to a network round trip
//! (tens of microseconds on loopback); see BENCHMARKS.md.

use attache_postgres_protocol::frame::{next_message, DEFAULT_MAX_MESSAGE_SIZE};
use attache_postgres_protocol::messages::{read_bind, write_bind};
use bytes::{BufMut, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Rows per buffer: a mid-sized result set, as a server sends it in one read.
const ROWS: usize = 1000;

/// A DataRow with `cols` text columns of `width` bytes each.
fn data_row(out: &mut BytesMut, cols: usize, width: usize) {
    let body_len = 2 + cols * (4 + width);
    out.put_u8(b'D');
    out.put_i32((body_len + 4) as i32);
    out.put_i16(cols as i16);
    for c in 0..cols {
        out.put_i32(width as i32);
        out.put_bytes(b'a' + (c % 26) as u8, width);
    }
}

/// RowDescription-free result: ROWS DataRows, then CommandComplete and
/// ReadyForQuery, the tail the relay looks for.
fn result_set(cols: usize, width: usize) -> BytesMut {
    let mut out = BytesMut::new();
    for _ in 0..ROWS {
        data_row(&mut out, cols, width);
    }
    let tag = b"SELECT 1000\0";
    out.put_u8(b'C');
    out.put_i32((tag.len() + 4) as i32);
    out.put_slice(tag);
    out.put_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    out
}

fn bench_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("split_data_rows");
    for (cols, width) in [(1usize, 4usize), (5, 16), (10, 100)] {
        let input = result_set(cols, width);
        // Messages per second: the relay's cost is per frame, not per byte.
        group.throughput(Throughput::Elements(ROWS as u64 + 2));
        group.bench_function(format!("{ROWS}x{cols}cols_{width}B"), |b| {
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    let mut n = 0usize;
                    while let Ok(Some(m)) = next_message(buf, DEFAULT_MAX_MESSAGE_SIZE) {
                        n += black_box(m.tag) as usize;
                    }
                    n
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A Bind body as pgbench -M prepared sends it: unnamed portal, statement
/// "P0_1", one text parameter, one result format.
fn bind_body() -> BytesMut {
    let mut body = BytesMut::new();
    body.put_slice(b"\0P0_1\0");
    body.put_i16(0); // parameter formats: all text
    body.put_i16(1); // one parameter
    body.put_i32(6);
    body.put_slice(b"123456");
    body.put_i16(0); // result formats: all text
    body
}

fn bench_bind_rename(c: &mut Criterion) {
    let body = bind_body();
    let mut out = BytesMut::with_capacity(256);
    c.bench_function("bind_rename", |b| {
        b.iter(|| {
            out.clear();
            if let Ok((portal, _stmt, rest)) = read_bind(black_box(&body)) {
                write_bind(&mut out, portal, "attache_s_42", rest);
            }
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench_split, bench_bind_rename);
criterion_main!(benches);
