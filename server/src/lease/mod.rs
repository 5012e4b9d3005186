//! Leases (placeholder): the Lease service is not implemented yet, so no lease exists and
//! any lease id given to Put is "requested lease not found". The lessor will plug in here.

/// Whether lease `id` exists (none do yet).
pub(crate) fn exists(_id: i64) -> bool {
    false
}
