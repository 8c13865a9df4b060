//! "Did you mean" suggestions.

/// `did you mean `x`?` for the closest candidate, if one is close enough.
pub(crate) fn did_you_mean<I, S>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut best: Option<(f64, String)> = None;
    for c in candidates {
        let c = c.as_ref();
        let score = strsim::jaro_winkler(name, c);
        if score >= 0.8
            && best
                .as_ref()
                .is_none_or(|(b, prev)| score > *b || (score == *b && c < prev.as_str()))
        {
            best = Some((score, c.to_string()));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("prdo", ["dev", "staging", "prod"]).as_deref(),
            Some("did you mean `prod`?")
        );
        assert_eq!(
            did_you_mean("ticket.clsoe", ["ticket.close", "ticket.create"]).as_deref(),
            Some("did you mean `ticket.close`?")
        );
        assert_eq!(did_you_mean("zzz", ["dev", "prod"]), None);
    }
}
