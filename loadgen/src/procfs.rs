//! CPU time (`/proc/PID/stat` utime + stime) and resident memory (`/proc/PID/status`
//! VmRSS) of a process, Linux only.

use std::sync::OnceLock;

/// utime + stime in clock ticks, from the text of `/proc/PID/stat`. The command name (field
/// 2) is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in KiB, from the text of `/proc/PID/status`.
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, the Linux default, if that fails).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU seconds (user + system) a process has used so far; `None` for `self`.
pub fn cpu_seconds(pid: Option<u32>) -> std::io::Result<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(&path)?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("cannot parse {path}"),
        )
    })?;
    Ok(ticks as f64 / clock_ticks() as f64)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)?;
    parse_vmrss_kib(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no VmRSS in {path}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (random-chats) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    750 125 0 0 20 0 9 0 100 123456 789 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(875));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped() {
        let stat = "7 (tokio (rt) w) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_ticks(stat), Some(7));
    }

    #[test]
    fn a_truncated_stat_is_refused() {
        assert_eq!(parse_stat_ticks("7 (x) R 1 2"), None);
        assert_eq!(parse_stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn vmrss_is_read_in_kib() {
        let status = "Name:\trandom-chats\nVmPeak:\t  99999 kB\nVmRSS:\t   45678 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss_kib(status), Some(45678));
        assert_eq!(parse_vmrss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_a_readable_cpu_time_and_rss() {
        assert!(cpu_seconds(None).unwrap() >= 0.0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
