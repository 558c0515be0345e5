//! How a client the server will not serve is told why: one frame, then the
//! server lets it go (see `crate::engine`'s gate).
//!
//! The notice's form, `-- refused: WHY` (see `docs/PROTOCOL.md`), is how
//! our client tells a refusal from a conversation that ended: it shows WHY
//! and exits with a failure. A plain protocol peer reads it as text.

const REFUSED: &str = "-- refused: ";

/// The one frame to a client that is refused, for `why`.
pub fn refusal(why: &str) -> String {
    format!("{REFUSED}{why}")
}

/// Why the server refused us, if `first` (the first frame it sent) says so.
pub fn read_refusal(first: &[u8]) -> Option<&str> {
    std::str::from_utf8(first.strip_prefix(REFUSED.as_bytes())?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_back_and_nothing_else_passes_for_one() {
        let notice = refusal("your address is not allowed here");
        assert_eq!(
            read_refusal(notice.as_bytes()),
            Some("your address is not allowed here")
        );
        for other in ["refused: x", "-- refused:x", "alice: -- refused: x", ""] {
            assert_eq!(read_refusal(other.as_bytes()), None, "{other:?}");
        }
    }
}
