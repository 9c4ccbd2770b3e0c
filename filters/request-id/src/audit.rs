//! The audit log lines of `request-id`: one per header the filter replaced, recording the
//! original (escaped, bounded, with its length) and the new value.

use shield_kit::log_escape::escape_quoted;

/// Line for a refused incoming request ID:
/// `replaced invalid request id request_id=<new> header=<name> reason=<why> original="<escaped>" original_length=<bytes>`.
pub fn replaced_id_line(request_id: &str, header: &str, reason: &str, original: &[u8]) -> String {
    format!(
        "replaced invalid request id request_id={request_id} header={header} reason={reason} original={} original_length={}",
        escape_quoted(original),
        original.len()
    )
}

/// Line for a refused `traceparent`:
/// `replaced invalid traceparent request_id=<id> original="<escaped>" original_length=<bytes> traceparent=<new>`.
pub fn replaced_traceparent_line(request_id: &str, original: &[u8], traceparent: &str) -> String {
    format!(
        "replaced invalid traceparent request_id={request_id} original={} original_length={} traceparent={traceparent}",
        escape_quoted(original),
        original.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_original_is_escaped() {
        let line = replaced_id_line("new-id", "x-request-id", "illegal_character", b"abc\r\nX-Injected: 1");
        assert_eq!(
            line,
            r#"replaced invalid request id request_id=new-id header=x-request-id reason=illegal_character original="abc\r\nX-Injected: 1" original_length=18"#
        );
        assert!(!line.contains('\r') && !line.contains('\n'));
    }

    #[test]
    fn huge_original_is_truncated_with_its_length() {
        let huge = vec![b'a'; 4096];
        let line = replaced_id_line("new-id", "x-request-id", "too_long", &huge);
        assert!(line.ends_with(r#""... original_length=4096"#), "{line}");
        assert!(line.len() < 400, "{} bytes", line.len());
    }

    #[test]
    fn traceparent_line() {
        let line = replaced_traceparent_line("id-1", b"zz\"", "00-1-2-01");
        assert_eq!(
            line,
            r#"replaced invalid traceparent request_id=id-1 original="zz\"" original_length=3 traceparent=00-1-2-01"#
        );
    }
}
