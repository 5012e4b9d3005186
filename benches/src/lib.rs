//! Criterion benchmarks of the storage crates live in `benches/benches/`.
//!
//! Where this crate fits in Cairn: `docs/architecture.md` at the repository root.
