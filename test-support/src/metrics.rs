//! Reading a metric out of a Prometheus text exposition, for tests that check what a
//! service counted.

/// The sum of the samples of `name` whose labels include every `(label, value)` of
/// `labels` (0 when there is none). `name` is the sample's full name, e.g.
/// `backend_errors_total` or `ws_relay_lag_seconds_count`.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample, label_text) = match series.split_once('{') {
                Some((sample, rest)) => (sample, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let wanted = sample == name
                && labels
                    .iter()
                    .all(|(label, v)| label_text.contains(&format!("{label}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE backend_errors_total counter
backend_errors_total{backend=\"redis\",kind=\"unavailable\"} 3
backend_errors_total{backend=\"sqlite\",kind=\"error\"} 2
backend_errors_total{backend=\"redis\",kind=\"error\"} 1
ws_relay_lag_seconds_count 7
ws_relay_lag_seconds_sum 0.25
";

    #[test]
    fn sums_the_samples_with_the_labels_asked_for() {
        let redis = [("backend", "redis")];
        assert_eq!(metric_sum(TEXT, "backend_errors_total", &redis), 4.0);
        let redis_down = [("backend", "redis"), ("kind", "unavailable")];
        assert_eq!(metric_sum(TEXT, "backend_errors_total", &redis_down), 3.0);
        assert_eq!(metric_sum(TEXT, "backend_errors_total", &[]), 6.0);
        assert_eq!(metric_sum(TEXT, "ws_relay_lag_seconds_count", &[]), 7.0);
        assert_eq!(metric_sum(TEXT, "ws_relay_lag_seconds", &[]), 0.0);
        assert_eq!(metric_sum(TEXT, "missing_total", &[]), 0.0);
    }
}
