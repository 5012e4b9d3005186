//! Criterion benchmarks of the storage crates live in `benches/benches/`.
