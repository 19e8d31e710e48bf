//! The HTML report: one self-contained file (inline CSS and SVG; no script, no external asset),
//! so it can be archived as evidence and opened anywhere. Every string that comes from the
//! runbook, the operator or AWS goes through [`escape`].

use super::model::{Measure, ReportData, Verdict};
use super::{human, svg, when};
use chrono::{DateTime, Utc};

/// Escapes text for HTML element content and quoted attribute values (and SVG inside HTML):
/// `&`, `<`, `>`, `"` and `'`. With these five replaced, no markup, attribute or entity can be
/// formed by the input.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px; color: #1d2329; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #d5dae0; padding-bottom: .2em; }
p.sub { color: #56606b; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: .88em; margin: .5em 0; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e4e8ec; vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
table.facts th { width: 14em; background: none; color: #56606b; font-weight: 500; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .92em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border: 1px solid #e4e8ec; }
.badge { display: inline-block; padding: .05em .55em; border-radius: .8em; font-size: .85em; font-weight: 600; }
.pass, .succeeded { background: #dcf5e3; color: #11602d; } .fail, .failed { background: #fde2e1; color: #9b1c1c; }
.not-measured, .no-objective, .paused, .interrupted, .running, .skipped, .cancelled { background: #eef0f3; color: #3d4650; }
svg text { font-size: 11px; fill: #3d4650; } svg .lane-label { text-anchor: end; } svg .tick-label { text-anchor: middle; fill: #6b7580; }
svg .tick { stroke: #e4e8ec; stroke-width: 1; }
svg rect.wave { fill: #c9d8f0; stroke: #5b7fb8; }
svg rect.step { fill: #8fb3e8; } svg rect.step-succeeded { fill: #3f9d5a; } svg rect.step-failed { fill: #d0413a; }
svg rect.step-running, svg rect.step-waiting_approval { fill: #e0a526; } svg rect.step-skipped, svg rect.step-cancelled { fill: #a3abb3; }
svg rect.trend-rto { fill: #3d6fb8; } svg rect.trend-rpo { fill: #8a63b8; } svg rect.missed { fill: #d0413a; }
svg line.trend-rto-objective, svg line.trend-rpo-objective { stroke: #1d2329; stroke-width: 2; stroke-dasharray: 4 2; }
.legend span { margin-right: 1.2em; font-size: .85em; } .legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -1px; }
.hash { word-break: break-all; }
"#;

fn text(value: &str) -> String {
    escape(value)
}

fn opt(value: Option<&str>) -> String {
    value.map(escape).unwrap_or_else(|| "—".to_owned())
}

fn at(value: Option<DateTime<Utc>>) -> String {
    value.as_ref().map(when).unwrap_or_else(|| "—".to_owned())
}

fn seconds(value: Option<f64>) -> String {
    value.map(human).unwrap_or_else(|| "—".to_owned())
}

fn badge(value: &str) -> String {
    format!(
        r#"<span class="badge {}">{}</span>"#,
        escape(&value.replace(' ', "-")),
        escape(value)
    )
}

/// A table with a header row; every cell is already HTML.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn facts(rows: &[(&str, String)]) -> String {
    let mut out = String::from(r#"<table class="facts"><tbody>"#);
    for (name, value) in rows {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{value}</td></tr>",
            escape(name)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

fn measure_row(name: &str, m: &Measure) -> Vec<String> {
    vec![
        text(name),
        seconds(m.objective_seconds),
        seconds(m.measured_seconds),
        badge(m.verdict.as_str()),
    ]
}

fn records(sets: &[crate::aws::route53::RecordSet]) -> String {
    if sets.is_empty() {
        return "(none)".to_owned();
    }
    sets.iter()
        .map(|r| {
            let target = match &r.alias {
                Some(alias) => {
                    format!("alias {}", serde_json::to_string(alias).unwrap_or_default())
                }
                None => r.values.join(", "),
            };
            format!(
                "<code>{} {} {}</code> {}",
                escape(&r.name),
                escape(&r.record_type),
                r.ttl.map(|t| format!("TTL {t}")).unwrap_or_default(),
                escape(&target)
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn targets(list: &[crate::aws::elbv2::Target]) -> String {
    if list.is_empty() {
        return "(none)".to_owned();
    }
    list.iter()
        .map(|t| {
            escape(&format!(
                "{}{}",
                t.id,
                t.port.map(|p| format!(":{p}")).unwrap_or_default()
            ))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Renders the whole report as one HTML document.
pub fn render(data: &ReportData) -> String {
    let run = &data.run;
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>{} of runbook {}: {}</h1>",
        text(&run.operation),
        text(&data.runbook.name),
        badge(&run.status)
    ));
    if !data.audit.verified {
        body.push_str(&format!(
            "<p><strong>The audit trail does not verify: {}.</strong> What this report shows cannot be trusted.</p>",
            text(data.audit.broken.as_deref().unwrap_or("-"))
        ));
    }
    body.push_str(&format!(
        r#"<p class="sub">Run <span class="mono">{}</span>{} · report generated {}</p>"#,
        text(&run.id),
        data.runbook
            .description
            .as_deref()
            .map(|d| format!(" · {}", escape(d)))
            .unwrap_or_default(),
        when(&data.generated_at)
    ));

    body.push_str("<h2>Summary</h2>");
    body.push_str(&facts(&[
        (
            "Operation",
            format!("{} ({} mode)", text(&run.operation), text(&run.mode)),
        ),
        ("Status", badge(&run.status)),
        ("Operator", text(&run.operator)),
        ("Host", text(&run.host)),
        ("Created", when(&run.created_at)),
        ("Started", at(run.started_at)),
        ("Finished", at(run.finished_at)),
        ("Duration", seconds(run.duration_seconds)),
        ("Disaster declared", at(run.declared_at)),
        ("Clock", text(&run.clock)),
        ("Linked run", opt(run.parent_run_id.as_deref())),
        ("Error", opt(run.error.as_deref())),
        ("Runbook file", text(&data.runbook.path)),
        (
            "Runbook SHA-256",
            format!(
                r#"<span class="mono hash">{}</span>"#,
                text(&data.runbook.sha256)
            ),
        ),
        (
            "Audit trail",
            if data.audit.verified {
                format!(
                    r#"{} {} events, final hash <span class="mono hash">{}</span>"#,
                    badge("pass"),
                    data.audit.event_count,
                    opt(data.audit.final_hash.as_deref())
                )
            } else {
                format!("{} {}", badge("fail"), opt(data.audit.broken.as_deref()))
            },
        ),
    ]));

    body.push_str("<h2>Objectives</h2>");
    body.push_str(&table(
        &["", "objective", "measured", "verdict"],
        vec![
            measure_row(
                "RTO (run start to traffic on recovered servers)",
                &data.objectives.rto,
            ),
            measure_row(
                "RPO (declared time minus the oldest data timestamp)",
                &data.objectives.rpo,
            ),
        ],
    ));

    body.push_str("<h2>Timeline</h2>");
    body.push_str(r#"<p class="legend"><span><i style="background:#c9d8f0"></i>wave</span><span><i style="background:#3f9d5a"></i>succeeded</span><span><i style="background:#d0413a"></i>failed</span><span><i style="background:#e0a526"></i>running / waiting</span><span><i style="background:#a3abb3"></i>skipped</span></p>"#);
    body.push_str(&svg::timeline(data));

    body.push_str("<h2>Steps</h2>");
    body.push_str(&table(
        &[
            "#", "step", "wave", "status", "start", "end", "duration", "attempts", "notes",
        ],
        data.steps
            .iter()
            .map(|s| {
                let notes = s.notes(escape);
                vec![
                    s.seq.to_string(),
                    format!("<code>{}</code>", text(&s.key)),
                    opt(s.wave.as_deref()),
                    badge(&s.status),
                    at(s.started_at),
                    at(s.finished_at),
                    seconds(s.duration_seconds),
                    s.attempts.to_string(),
                    notes.join("<br>"),
                ]
            })
            .collect(),
    ));

    body.push_str("<h2>Servers</h2>");
    body.push_str(&table(
        &[
            "server",
            "wave",
            "job",
            "data timestamp",
            "RPO",
            "launch",
            "recovery / EC2 instance",
            "private IPs",
            "job start → launched",
            "duration",
        ],
        data.servers
            .iter()
            .map(|s| {
                vec![
                    format!("<code>{}</code>", text(&s.source_server_id)),
                    text(&s.wave),
                    opt(s.job_id.as_deref()),
                    at(s.data_timestamp),
                    seconds(s.rpo_seconds),
                    format!(
                        "{}{}",
                        opt(s.launch_status.as_deref()),
                        s.error
                            .as_deref()
                            .map(|e| format!("<br>{}", escape(e)))
                            .unwrap_or_default()
                    ),
                    format!(
                        "{}<br>{}",
                        opt(s.recovery_instance_id.as_deref()),
                        opt(s.ec2_instance_id.as_deref())
                    ),
                    escape(&s.private_ips.join(", ")),
                    format!("{}<br>{}", at(s.started_at), at(s.launched_at)),
                    seconds(s.duration_seconds),
                ]
            })
            .collect(),
    ));

    body.push_str("<h2>DRS jobs</h2>");
    for job in &data.jobs {
        body.push_str(&format!(
            "<h3><code>{}</code> {}{}</h3><p class=\"sub\">step {} · servers {} · started {} · request ID {}</p>",
            text(&job.job_id),
            if job.is_drill { "(drill) " } else { "" },
            job.wave.as_deref().map(|w| format!("wave {}", escape(w))).unwrap_or_default(),
            text(&job.step_key),
            escape(&job.servers.join(", ")),
            at(job.started_at),
            opt(job.aws_request_id.as_deref()),
        ));
        body.push_str(&table(
            &["time", "event", "server", "detail"],
            job.log
                .iter()
                .map(|e| {
                    vec![
                        when(&e.at),
                        format!("<code>{}</code>", text(&e.event)),
                        opt(e.source_server_id.as_deref()),
                        opt(e.detail.as_deref()),
                    ]
                })
                .collect(),
        ));
    }
    if data.jobs.is_empty() {
        body.push_str("<p>No DRS job.</p>");
    }

    if !data.dns.is_empty() {
        body.push_str("<h2>DNS records</h2>");
        body.push_str(&table(
            &[
                "hosted zone",
                "account",
                "before",
                "after",
                "change",
                "in sync",
            ],
            data.dns
                .iter()
                .map(|z| {
                    vec![
                        format!("<code>{}</code>", text(&z.hosted_zone_id)),
                        text(&z.account),
                        records(&z.before),
                        records(&z.after),
                        opt(z.change_id.as_deref()),
                        at(z.insync_at),
                    ]
                })
                .collect(),
        ));
    }

    if !data.load_balancers.is_empty() {
        body.push_str("<h2>Load balancer targets</h2>");
        body.push_str(&table(
            &[
                "target group",
                "before",
                "registered",
                "deregistered",
                "healthy",
            ],
            data.load_balancers
                .iter()
                .map(|g| {
                    vec![
                        format!("<code>{}</code>", text(&g.target_group_arn)),
                        targets(&g.before),
                        targets(&g.registered),
                        targets(&g.deregistered),
                        at(g.healthy_at),
                    ]
                })
                .collect(),
        ));
    }

    if !data.actions.is_empty() {
        body.push_str("<h2>Actions</h2>");
        body.push_str(&table(
            &[
                "step", "status", "kind", "runs", "started", "took", "result",
            ],
            data.actions
                .iter()
                .map(|a| {
                    vec![
                        format!("<code>{}</code>", text(&a.step)),
                        badge(&a.status),
                        text(&a.kind),
                        format!("<code>{}</code>", text(&a.run)),
                        at(a.started_at),
                        seconds(a.duration_seconds),
                        text(&super::markdown::action_result(a)),
                    ]
                })
                .collect(),
        ));
        for a in &data.actions {
            for (stream, output) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
                if !output.is_empty() {
                    body.push_str(&format!(
                        "<p><code>{}</code> {stream}:</p><pre>{}</pre>",
                        text(&a.step),
                        escape(output)
                    ));
                }
            }
        }
    }

    body.push_str("<h2>Approvals and skips</h2>");
    if data.operator_actions.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(&table(
            &["time", "step", "action", "by", "comment"],
            data.operator_actions
                .iter()
                .map(|a| {
                    vec![
                        at(a.at),
                        format!("<code>{}</code>", text(&a.step_key)),
                        text(&a.action),
                        opt(a.by.as_deref()),
                        opt(a.comment.as_deref()),
                    ]
                })
                .collect(),
        ));
    }

    if let Some(c) = &data.cleanup {
        body.push_str("<h2>Cleanup inventory</h2>");
        body.push_str(&facts(&[
            ("Verdict", badge(if c.complete { "pass" } else { "fail" })),
            ("Created", escape(&c.created.join(", "))),
            ("Terminated", escape(&c.terminated.join(", "))),
            (
                "Remaining",
                if c.remaining.is_empty() {
                    "none".to_owned()
                } else {
                    escape(&c.remaining.join(", "))
                },
            ),
            ("Terminate job", opt(c.terminate_job_id.as_deref())),
            ("Verified gone", at(c.verified_at)),
        ]));
    }

    if !data.trend.is_empty() {
        body.push_str("<h2>Drill trend</h2>");
        body.push_str(r#"<p class="legend"><span><i style="background:#3d6fb8"></i>RTO</span><span><i style="background:#8a63b8"></i>RPO</span><span><i style="background:#d0413a"></i>missed</span><span>dashed: objective</span></p>"#);
        body.push_str(&svg::trend_chart(&data.trend));
        body.push_str(&table(
            &[
                "drill",
                "started",
                "status",
                "RTO",
                "RTO objective",
                "",
                "RPO",
                "RPO objective",
                "",
            ],
            data.trend
                .iter()
                .map(|p| {
                    vec![
                        format!("<span class=\"mono\">{}</span>", text(&p.run_id)),
                        when(&p.created_at),
                        badge(&p.status),
                        seconds(p.rto.measured_seconds),
                        seconds(p.rto.objective_seconds),
                        badge(p.rto.verdict.as_str()),
                        seconds(p.rpo.measured_seconds),
                        seconds(p.rpo.objective_seconds),
                        badge(p.rpo.verdict.as_str()),
                    ]
                })
                .collect(),
        ));
    }

    body.push_str("<h2>AWS requests</h2>");
    body.push_str(&table(
        &[
            "time",
            "step",
            "operation",
            "account",
            "region",
            "state",
            "request ID",
        ],
        data.aws_requests
            .iter()
            .map(|r| {
                vec![
                    when(&r.at),
                    format!("<code>{}</code>", text(&r.step_key)),
                    text(&r.operation),
                    text(&r.account),
                    text(&r.region),
                    format!(
                        "{}{}",
                        text(&r.state),
                        r.error
                            .as_deref()
                            .map(|e| format!("<br>{}", escape(e)))
                            .unwrap_or_default()
                    ),
                    format!(
                        r#"<span class="mono">{}</span>"#,
                        opt(r.aws_request_id.as_deref())
                    ),
                ]
            })
            .collect(),
    ));

    body.push_str("<h2>Runbook as run</h2>");
    body.push_str(&format!(
        r#"<p>SHA-256 <span class="mono hash">{}</span></p><pre>{}</pre>"#,
        text(&data.runbook.sha256),
        text(&data.runbook.text)
    ));

    let verdict_line = match (data.objectives.rto.verdict, data.objectives.rpo.verdict) {
        (Verdict::Fail, _) | (_, Verdict::Fail) => "an objective was missed",
        _ => "objectives met or not set",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"description\" content=\"{}\"><title>{} {} {}: {}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(verdict_line),
        text(&run.operation),
        text(&data.runbook.name),
        text(&run.id),
        text(&run.status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture::{self, HOSTILE};
    use crate::store::Operation;

    #[test]
    fn the_report_escapes_every_supplied_string_and_loads_nothing() {
        let html = render(&fixture::data(Operation::Failover));
        assert!(!html.contains("<script"), "no script at all");
        assert!(!html.contains("<img"), "no image at all");
        assert!(!html.contains(HOSTILE));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        for reference in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "url(",
            "@import",
        ] {
            assert!(!html.contains(reference), "external reference {reference}");
        }
    }

    #[test]
    fn the_timeline_has_a_rect_per_step_and_per_wave() {
        let data = fixture::data(Operation::Failover);
        let html = render(&data);
        for step in &data.steps {
            assert!(
                html.contains(&format!("data-step=\"{}\"", escape(&step.key))),
                "{}",
                step.key
            );
        }
        assert_eq!(
            html.matches("<rect class=\"step step-succeeded\"").count(),
            data.steps.len()
        );
        assert_eq!(
            html.matches("<rect class=\"wave\"").count(),
            1,
            "one wave (db)"
        );
        assert!(html.contains("Runbook as run") && html.contains(&data.runbook.sha256));
    }

    #[test]
    fn escape_neutralises_markup_and_attribute_breakouts() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            escape(r#"<img src=x onerror=alert(1)>"#),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(escape(r#"" onload="x"#), "&quot; onload=&quot;x");
        assert_eq!(escape("it's"), "it&#39;s");
        assert_eq!(escape("a && b"), "a &amp;&amp; b");
        assert_eq!(
            escape("&lt;"),
            "&amp;lt;",
            "already-escaped text is escaped again, not trusted"
        );
        assert_eq!(escape("plain é ünïcode"), "plain é ünïcode");
        for input in [
            "<",
            ">",
            "\"",
            "'",
            "<svg onload=alert(1)>",
            "</title><script>",
        ] {
            let out = escape(input);
            assert!(!out.contains(['<', '>', '"', '\'']), "{input} -> {out}");
        }
    }
}
