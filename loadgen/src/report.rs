//! Human-readable output of the reports.

use std::fmt::Write as _;

use crate::conversation::{ConversationReport, StepReport};
use crate::idle::IdleReport;
use crate::matching::MatchingReport;
use crate::stats::LatencySummary;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "inf".to_owned(), |v| format!("{v:.2}"))
}

fn latency(l: &LatencySummary) -> String {
    format!(
        "p50 {} / p90 {} / p99 {} / max {} ms",
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.max_ms)
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// One line per step (printed while `findmax` runs).
pub fn step_line(s: &StepReport) -> String {
    format!(
        "rate {:>8.0}/s: sent {} acked {} delivered {} ({:.2} %), recv p50 {} p99 {} ms, \
         server {} cores, client {:.2} cores, {}",
        s.rate,
        s.sent,
        s.acked,
        s.delivered,
        s.delivered_ratio * 100.0,
        ms(s.receive.p50_ms),
        ms(s.receive.p99_ms),
        opt(s.server_cores),
        s.client_cores,
        if s.pass { "PASS" } else { "FAIL" }
    )
}

/// A conversation run.
pub fn conversation(r: &ConversationReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "conversation ({}): {} pairs, {}-byte texts, receipts {}, set up in {:.1} s",
        r.mode,
        r.pairs,
        r.text_bytes,
        if r.delivered_receipts { "on" } else { "off" },
        r.setup_s
    );
    for s in &r.steps {
        let _ = writeln!(
            out,
            "  rate {:.0} msg/s {}",
            s.rate,
            if s.pass { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            out,
            "    sent {}  acked {}  delivered {} ({:.2} %)  deliveries/s {:.0}",
            s.sent,
            s.acked,
            s.delivered,
            s.delivered_ratio * 100.0,
            s.deliveries_per_sec
        );
        let _ = writeln!(out, "    send→ack      {}", latency(&s.ack));
        let _ = writeln!(out, "    send→receive  {}", latency(&s.receive));
        let _ = writeln!(
            out,
            "    server CPU {} s ({} cores), deliveries per server CPU-s {}; client {:.2} cores, \
             send lag max {:.1} ms",
            opt(s.server_cpu_s),
            opt(s.server_cores),
            opt(s.deliveries_per_server_cpu_s),
            s.client_cores,
            s.client_send_lag_max_ms
        );
        if !s.errors.is_empty() || s.disconnects > 0 {
            let _ = writeln!(
                out,
                "    errors {:?}, disconnects {}",
                s.errors, s.disconnects
            );
        }
    }
    if r.mode == "findmax" {
        let _ = writeln!(
            out,
            "  highest rate held: {} msg/s (lowest failing: {}), rule: delivered ≥ {:.0} % and \
             p99 send→receive ≤ {} ms",
            opt(r.max_pass_rate),
            opt(r.first_fail_rate),
            r.rule.min_delivered * 100.0,
            r.rule.max_p99_ms
        );
    }
    out
}

/// An idle run.
pub fn idle(r: &IdleReport) -> String {
    format!(
        "idle: {} connections asked ({} users, {} processes): {} connected, {} failed, {} lost\n  \
         sign-ups {:.1} s, connects {:.1} s\n  server RSS before {} KiB, after {} KiB, end {} KiB\n  \
         KiB per connection: {} (after settle), {} (end)\n",
        r.connections,
        r.users,
        r.processes,
        r.connected,
        r.failed,
        r.lost,
        r.signup_s,
        r.connect_s,
        opt(r.rss_before_kib),
        opt(r.rss_after_kib),
        opt(r.rss_end_kib),
        opt(r.kib_per_connection),
        opt(r.kib_per_connection_end)
    )
}

/// A matching run.
pub fn matching(r: &MatchingReport) -> String {
    format!(
        "matching: {} tickets (sign-ups {:.1} s, connects {:.1} s)\n  joins {:.2} s ({:.0}/s)\n  \
         {} pairs, {} unmatched, last match {:.2} s after the first join: {:.0} pairs/s\n  \
         time to match {}\n  server CPU {} s\n",
        r.tickets,
        r.signup_s,
        r.connect_s,
        r.join_s,
        r.joins_per_sec,
        r.pairs,
        r.unmatched,
        r.span_s,
        r.pairs_per_sec,
        latency(&r.time_to_match),
        opt(r.server_cpu_s)
    )
}
