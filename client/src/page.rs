//! Checks on one page of a scan (raw or transactional) before it is merged with other pages.

use proto::kvrpcpb;

use crate::errors::{Error, Result};

/// A page must be sorted in scan order, inside the asked bounds (`[lower, upper)`), free of
/// per-key errors, and no longer than asked: anything else would corrupt the merge across
/// regions, so it is a protocol error rather than something to paper over.
pub(crate) fn check_page(
    rpc: &'static str,
    kvs: &[kvrpcpb::KvPair],
    page: usize,
    lower: &[u8],
    upper: Option<&[u8]>,
    reverse: bool,
) -> Result<()> {
    let bad = |reason: String| Err(Error::invalid_response(rpc, reason));
    if kvs.len() > page {
        return bad(format!("{} pairs for a limit of {page}", kvs.len()));
    }
    for (i, p) in kvs.iter().enumerate() {
        if let Some(e) = &p.error {
            return Err(e.clone().into());
        }
        if p.key.as_slice() < lower || upper.is_some_and(|u| p.key.as_slice() >= u) {
            return bad(format!(
                "key \"{}\" outside the scanned range",
                p.key.escape_ascii()
            ));
        }
        if i > 0 {
            let prev = &kvs[i - 1].key;
            let ordered = if reverse {
                *prev > p.key
            } else {
                *prev < p.key
            };
            if !ordered {
                return bad("keys out of order".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(keys: &[&str]) -> Vec<kvrpcpb::KvPair> {
        keys.iter()
            .map(|k| kvrpcpb::KvPair {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn pages_are_validated() {
        let check = |keys: &[&str], lower: &[u8], upper: Option<&[u8]>, reverse| {
            check_page("RawScan", &pairs(keys), 2, lower, upper, reverse).is_ok()
        };
        assert!(check(&["b", "c"], b"a", Some(b"d"), false));
        assert!(check(&["c", "b"], b"a", Some(b"d"), true));
        assert!(!check(&["c", "b"], b"a", Some(b"d"), false), "order");
        assert!(
            !check(&["b", "d"], b"a", Some(b"d"), false),
            "upper is exclusive"
        );
        assert!(!check(&["b"], b"c", None, false), "below lower");
        assert!(!check(&["b", "b"], b"a", None, false), "duplicate");
        assert!(!check(&["b", "c", "d"], b"a", None, false), "too many");
        let mut with_error = pairs(&["b"]);
        with_error[0].error = Some(kvrpcpb::KeyError {
            abort: "x".into(),
            ..Default::default()
        });
        assert!(check_page("KvScan", &with_error, 2, b"", None, false).is_err());
    }
}
