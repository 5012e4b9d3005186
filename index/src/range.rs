//! etcd's key-range conventions.

/// The keys a `(start, end)` pair selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange<'a> {
    /// `end` is empty: just `start`.
    Single(&'a [u8]),
    /// `end` is `b"\0"`: every key at or above `start`.
    From(&'a [u8]),
    /// Otherwise the half-open interval `[start, end)`; empty when `end <= start`.
    Span(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    pub(crate) fn new(start: &'a [u8], end: &'a [u8]) -> Self {
        match end {
            [] => KeyRange::Single(start),
            [0] => KeyRange::From(start),
            _ => KeyRange::Span(start, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a"));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a"));
        assert_eq!(KeyRange::new(b"\0", b"\0"), KeyRange::From(b"\0"));
        assert_eq!(KeyRange::new(b"a", b"b"), KeyRange::Span(b"a", b"b"));
        // Only a lone NUL byte means "to the end".
        assert_eq!(KeyRange::new(b"a", b"\0\0"), KeyRange::Span(b"a", b"\0\0"));
    }
}
