//! Member-to-member transport (being written; see /work/helper-notes/CLUSTER-CONTRACTS.md).
