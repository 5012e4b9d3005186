//! Installing a backend received from the leader, and streaming ours (being written).
