//! The Markdown report: the same content as the HTML report, for tickets and wikis. Strings
//! from the runbook or the operator are escaped for table cells ([`cell`]), and the runbook text
//! sits in a fence longer than any run of backticks it contains.

use super::model::{Measure, ReportData};
use super::{human, when};
use chrono::{DateTime, Utc};

/// Makes a string safe inside a Markdown table cell: no pipe, no line break, no raw HTML
/// (many renderers pass HTML through), no link or image (`[..](..)`, `![..](..)`: a
/// `javascript:` link or a tracking image from a runbook or an operator), and control
/// characters shown as `\u{..}`.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '[' | ']' | '(' | ')' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '`' => out.push('\''),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn opt(value: Option<&str>) -> String {
    value.map(cell).unwrap_or_else(|| "—".to_owned())
}

fn at(value: Option<DateTime<Utc>>) -> String {
    value.as_ref().map(when).unwrap_or_else(|| "—".to_owned())
}

fn seconds(value: Option<f64>) -> String {
    value.map(human).unwrap_or_else(|| "—".to_owned())
}

fn table(out: &mut String, headers: &[&str], rows: Vec<Vec<String>>) {
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out.push('\n');
}

fn measure(name: &str, m: &Measure) -> Vec<String> {
    vec![
        name.to_owned(),
        seconds(m.objective_seconds),
        seconds(m.measured_seconds),
        format!("**{}**", m.verdict.as_str()),
    ]
}

/// An action's result in a few words: exit or HTTP status, and why it failed.
pub fn action_result(a: &crate::report::model::ActionFacts) -> String {
    let mut parts = Vec::new();
    if let Some(code) = a.exit_status {
        parts.push(format!("exit {code}"));
    }
    if let Some(status) = a.http_status {
        parts.push(format!(
            "HTTP {status} after {} attempt(s)",
            a.attempt_count
        ));
    }
    if a.timed_out {
        parts.push("timed out".to_owned());
    }
    if a.passed_over {
        parts.push("optional, passed over".to_owned());
    }
    if let Some(error) = &a.error {
        parts.push(error.clone());
    }
    parts.join("; ")
}

/// A code fence longer than the longest run of backticks in `text`.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Renders the whole report as Markdown.
pub fn render(data: &ReportData) -> String {
    let run = &data.run;
    let mut out = format!(
        "# {} of runbook {}: {}\n\n",
        cell(&run.operation),
        cell(&data.runbook.name),
        cell(&run.status)
    );
    if !data.audit.verified {
        out.push_str(&format!(
            "> **The audit trail does not verify**: {}. What this report shows cannot be trusted.\n\n",
            opt(data.audit.broken.as_deref())
        ));
    }
    if let Some(description) = &data.runbook.description {
        out.push_str(&format!("{}\n\n", cell(description)));
    }
    table(
        &mut out,
        &["", ""],
        vec![
            vec!["Run".into(), format!("`{}`", cell(&run.id))],
            vec![
                "Operation".into(),
                format!("{} ({} mode)", cell(&run.operation), cell(&run.mode)),
            ],
            vec!["Operator".into(), cell(&run.operator)],
            vec!["Host".into(), cell(&run.host)],
            vec!["Started".into(), at(run.started_at)],
            vec!["Finished".into(), at(run.finished_at)],
            vec!["Duration".into(), seconds(run.duration_seconds)],
            vec!["Clock".into(), cell(&run.clock)],
            vec!["Linked run".into(), opt(run.parent_run_id.as_deref())],
            vec!["Error".into(), opt(run.error.as_deref())],
            vec![
                "Runbook SHA-256".into(),
                format!("`{}`", cell(&data.runbook.sha256)),
            ],
            vec![
                "Audit trail".into(),
                if data.audit.verified {
                    format!(
                        "verified, {} events, final hash `{}`",
                        data.audit.event_count,
                        opt(data.audit.final_hash.as_deref())
                    )
                } else {
                    format!("**BROKEN**: {}", opt(data.audit.broken.as_deref()))
                },
            ],
            vec!["Report generated".into(), when(&data.generated_at)],
        ],
    );

    out.push_str("## Objectives\n\n");
    table(
        &mut out,
        &["", "objective", "measured", "verdict"],
        vec![
            measure("RTO", &data.objectives.rto),
            measure("RPO", &data.objectives.rpo),
        ],
    );
    if let Some(spread) = data.objectives.snapshot_spread_seconds {
        out.push_str(&format!(
            "Consistency: the snapshots of all waves were taken within {}.\n\n",
            seconds(Some(spread))
        ));
    }

    out.push_str("## Steps\n\n");
    table(
        &mut out,
        &[
            "#", "step", "wave", "status", "start", "end", "duration", "attempts", "notes",
        ],
        data.steps
            .iter()
            .map(|s| {
                let notes = s.notes(cell);
                vec![
                    s.seq.to_string(),
                    format!("`{}`", cell(&s.key)),
                    opt(s.wave.as_deref()),
                    cell(&s.status),
                    at(s.started_at),
                    at(s.finished_at),
                    seconds(s.duration_seconds),
                    s.attempts.to_string(),
                    notes.join("; "),
                ]
            })
            .collect(),
    );

    out.push_str("## Servers\n\n");
    table(
        &mut out,
        &[
            "server",
            "wave",
            "job",
            "data timestamp",
            "RPO",
            "launch",
            "recovery instance",
            "EC2 instance",
            "private IPs",
            "launched",
            "duration",
        ],
        data.servers
            .iter()
            .map(|s| {
                vec![
                    format!("`{}`", cell(&s.source_server_id)),
                    cell(&s.wave),
                    opt(s.job_id.as_deref()),
                    at(s.data_timestamp),
                    seconds(s.rpo_seconds),
                    opt(s.launch_status.as_deref()),
                    opt(s.recovery_instance_id.as_deref()),
                    opt(s.ec2_instance_id.as_deref()),
                    cell(&s.private_ips.join(", ")),
                    at(s.launched_at),
                    seconds(s.duration_seconds),
                ]
            })
            .collect(),
    );

    out.push_str("## DRS jobs\n\n");
    for job in &data.jobs {
        out.push_str(&format!(
            "### `{}`{} (step `{}`, request ID {})\n\n",
            cell(&job.job_id),
            if job.is_drill { " drill" } else { "" },
            cell(&job.step_key),
            opt(job.aws_request_id.as_deref())
        ));
        table(
            &mut out,
            &["time", "event", "server", "detail"],
            job.log
                .iter()
                .map(|e| {
                    vec![
                        when(&e.at),
                        cell(&e.event),
                        opt(e.source_server_id.as_deref()),
                        opt(e.detail.as_deref()),
                    ]
                })
                .collect(),
        );
    }

    if !data.dns.is_empty() {
        out.push_str("## DNS records\n\n");
        let records = |sets: &[crate::aws::route53::RecordSet]| {
            sets.iter()
                .map(|r| {
                    cell(&format!(
                        "{} {} {}",
                        r.name,
                        r.record_type,
                        r.values.join(",")
                    ))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        table(
            &mut out,
            &["hosted zone", "before", "after", "change", "in sync"],
            data.dns
                .iter()
                .map(|z| {
                    vec![
                        cell(&z.hosted_zone_id),
                        records(&z.before),
                        records(&z.after),
                        opt(z.change_id.as_deref()),
                        at(z.insync_at),
                    ]
                })
                .collect(),
        );
    }

    if !data.actions.is_empty() {
        out.push_str("## Actions\n\n");
        table(
            &mut out,
            &[
                "step", "status", "kind", "runs", "started", "took", "result",
            ],
            data.actions
                .iter()
                .map(|a| {
                    vec![
                        format!("`{}`", cell(&a.step)),
                        cell(&a.status),
                        cell(&a.kind),
                        cell(&a.run),
                        at(a.started_at),
                        seconds(a.duration_seconds),
                        cell(&action_result(a)),
                    ]
                })
                .collect(),
        );
        for a in &data.actions {
            for (stream, text) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
                if !text.is_empty() {
                    let fence = fence(text);
                    out.push_str(&format!(
                        "`{}` {stream}:\n\n{fence}text\n{}\n{fence}\n\n",
                        cell(&a.step),
                        text.trim_end()
                    ));
                }
            }
        }
    }

    out.push_str("## Approvals and skips\n\n");
    if data.operator_actions.is_empty() {
        out.push_str("None.\n\n");
    } else {
        table(
            &mut out,
            &["time", "step", "action", "by", "comment"],
            data.operator_actions
                .iter()
                .map(|a| {
                    vec![
                        at(a.at),
                        cell(&a.step_key),
                        cell(&a.action),
                        opt(a.by.as_deref()),
                        opt(a.comment.as_deref()),
                    ]
                })
                .collect(),
        );
    }

    if let Some(c) = &data.cleanup {
        out.push_str(&format!(
            "## Cleanup inventory: {}\n\n- created: {}\n- terminated: {}\n- remaining: {}\n- verified gone: {}\n\n",
            if c.complete { "complete" } else { "**INCOMPLETE**" },
            cell(&c.created.join(", ")),
            cell(&c.terminated.join(", ")),
            if c.remaining.is_empty() { "none".to_owned() } else { cell(&c.remaining.join(", ")) },
            at(c.verified_at),
        ));
    }

    if !data.trend.is_empty() {
        out.push_str("## Drill trend\n\n");
        table(
            &mut out,
            &[
                "drill",
                "started",
                "status",
                "RTO",
                "objective",
                "",
                "RPO",
                "objective",
                "",
            ],
            data.trend
                .iter()
                .map(|p| {
                    vec![
                        format!("`{}`", cell(&p.run_id)),
                        when(&p.created_at),
                        cell(&p.status),
                        seconds(p.rto.measured_seconds),
                        seconds(p.rto.objective_seconds),
                        p.rto.verdict.as_str().to_owned(),
                        seconds(p.rpo.measured_seconds),
                        seconds(p.rpo.objective_seconds),
                        p.rpo.verdict.as_str().to_owned(),
                    ]
                })
                .collect(),
        );
    }

    out.push_str("## AWS requests\n\n");
    table(
        &mut out,
        &["time", "step", "operation", "state", "request ID"],
        data.aws_requests
            .iter()
            .map(|r| {
                vec![
                    when(&r.at),
                    cell(&r.step_key),
                    cell(&r.operation),
                    cell(&r.state),
                    opt(r.aws_request_id.as_deref()),
                ]
            })
            .collect(),
    );

    let fence = fence(&data.runbook.text);
    out.push_str(&format!(
        "## Runbook as run\n\nSHA-256 `{}`, from `{}`\n\n{fence}toml\n{}\n{fence}\n",
        cell(&data.runbook.sha256),
        cell(&data.runbook.path),
        data.runbook.text.trim_end()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("<script>x</script>"), "&lt;script&gt;x&lt;/script&gt;");
    }

    #[test]
    fn the_report_lists_steps_servers_jobs_and_verdicts() {
        let data = crate::report::model::fixture::data(crate::store::Operation::Failover);
        let md = render(&data);
        assert!(md.contains("| RTO | 30m00s | 18m00s | **pass** |"), "{md}");
        assert!(md.contains("| RPO | 15m00s | 16m00s | **fail** |"), "{md}");
        assert!(
            md.contains("`drsjob-1`") && md.contains("req-start-1"),
            "{md}"
        );
        assert!(md.contains("| `launch:db` | db | succeeded |"), "{md}");
        // Inside the fence the runbook is verbatim (renderers show code literally); outside it
        // nothing supplied may form HTML.
        let (prose, runbook) = md.split_once("## Runbook as run").unwrap();
        assert!(
            !prose.contains("<script>") && !prose.contains("<img"),
            "{prose}"
        );
        assert!(runbook.contains(&data.runbook.text.trim_end().to_owned()));
        assert!(md.contains(&format!("final hash `{}`", "a".repeat(64))));
    }

    #[test]
    fn the_fence_outlasts_backticks_in_the_text() {
        assert_eq!(fence("no ticks"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }
}
