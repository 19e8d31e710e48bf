//! Inline SVG for the HTML report: the timeline of waves and steps, and the drill trend chart.
//! Pure functions of [`ReportData`]; every string from the runbook or the store is escaped with
//! [`escape`] (SVG inside HTML is parsed by the HTML parser: the same escaping applies to its
//! text and attribute values).
//!
//! ```text
//!   waves   db   ████████                    one lane per wave: first step start -> last step end
//!           app          ██████████████
//!   steps   preflight ▌                      one lane per step, class "step step-<status>",
//!           recovery_job:db ██               data-step="<key>", with a <title> tooltip
//!           ...                         ───── axis: minutes from the run's start
//! ```

use chrono::{DateTime, Utc};

use super::html::escape;
use super::model::{ReportData, StepFacts, TrendPoint, Verdict};
use super::{human, when};

const WIDTH: f64 = 960.0;
const LABEL: f64 = 230.0;
const LANE: f64 = 22.0;
const TOP: f64 = 24.0;

/// The time span the timeline covers, and how to place a time on it.
struct Scale {
    start: DateTime<Utc>,
    seconds: f64,
}

impl Scale {
    fn x(&self, at: DateTime<Utc>) -> f64 {
        let offset = (at - self.start).num_milliseconds() as f64 / 1000.0;
        LABEL + (offset / self.seconds).clamp(0.0, 1.0) * (WIDTH - LABEL - 20.0)
    }
}

/// A step's span; a running step ends at the report's time.
fn span(step: &StepFacts, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = step.started_at?;
    Some((start, step.finished_at.unwrap_or(now).max(start)))
}

fn scale(data: &ReportData) -> Option<Scale> {
    let spans: Vec<_> = data
        .steps
        .iter()
        .filter_map(|s| span(s, data.generated_at))
        .collect();
    let start = data
        .run
        .started_at
        .into_iter()
        .chain(spans.iter().map(|s| s.0))
        .min()?;
    let end = data
        .run
        .finished_at
        .into_iter()
        .chain(spans.iter().map(|s| s.1))
        .max()
        .unwrap_or(start);
    let seconds = ((end - start).num_milliseconds() as f64 / 1000.0).max(1.0);
    Some(Scale { start, seconds })
}

/// A tick interval giving at most about ten ticks.
fn tick_seconds(total: f64) -> f64 {
    const STEPS: [f64; 12] = [
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| total / s <= 10.0)
        .unwrap_or((total / 10.0).ceil())
}

/// Waves in plan order with their spans.
fn waves(data: &ReportData) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let mut waves: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for step in &data.steps {
        let (Some(wave), Some((start, end))) = (&step.wave, span(step, data.generated_at)) else {
            continue;
        };
        match waves.iter_mut().find(|w| &w.0 == wave) {
            Some(w) => {
                w.1 = w.1.min(start);
                w.2 = w.2.max(end);
            }
            None => waves.push((wave.clone(), start, end)),
        }
    }
    waves
}

/// The timeline of the run's waves and steps.
pub fn timeline(data: &ReportData) -> String {
    let Some(scale) = scale(data) else {
        return r#"<p class="empty">No step has started: nothing to draw.</p>"#.to_owned();
    };
    let waves = waves(data);
    let lanes = waves.len() + data.steps.len() + 1;
    let height = TOP + lanes as f64 * LANE + 30.0;
    let mut svg = format!(
        r#"<svg class="timeline" role="img" aria-label="Timeline of the run's waves and steps" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#
    );
    svg.push_str(&axis(&scale, height));
    let mut y = TOP;
    for (name, start, end) in &waves {
        let (x0, x1) = (scale.x(*start), scale.x(*end));
        svg.push_str(&format!(
            r#"<text class="lane-label wave-label" x="{lx}" y="{ty}">wave {name}</text><rect class="wave" data-wave="{name}" x="{x0:.1}" y="{ry}" width="{w:.1}" height="{h}" rx="3"><title>wave {name}: {from} to {to} ({dur})</title></rect>"#,
            lx = LABEL - 8.0,
            ty = y + 15.0,
            ry = y + 3.0,
            w = (x1 - x0).max(2.0),
            h = LANE - 6.0,
            name = escape(name),
            from = when(start),
            to = when(end),
            dur = human((*end - *start).num_milliseconds() as f64 / 1000.0),
        ));
        y += LANE;
    }
    y += LANE;
    for step in &data.steps {
        svg.push_str(&format!(
            r#"<text class="lane-label" x="{lx}" y="{ty}">{key}</text>"#,
            lx = LABEL - 8.0,
            ty = y + 15.0,
            key = escape(&step.key),
        ));
        if let Some((start, end)) = span(step, data.generated_at) {
            let (x0, x1) = (scale.x(start), scale.x(end));
            svg.push_str(&format!(
                r#"<rect class="step step-{status}" data-step="{key}" x="{x0:.1}" y="{ry}" width="{w:.1}" height="{h}" rx="2"><title>{key}: {status_text}, {from} to {to} ({dur}), {attempts} attempt(s)</title></rect>"#,
                status = escape(&step.status),
                status_text = escape(&step.status),
                key = escape(&step.key),
                ry = y + 4.0,
                w = (x1 - x0).max(2.0),
                h = LANE - 8.0,
                from = when(&start),
                to = when(&end),
                dur = human((end - start).num_milliseconds() as f64 / 1000.0),
                attempts = step.attempts,
            ));
        }
        y += LANE;
    }
    svg.push_str("</svg>");
    svg
}

fn axis(scale: &Scale, height: f64) -> String {
    let tick = tick_seconds(scale.seconds);
    let mut out = String::new();
    let mut t = 0.0;
    while t <= scale.seconds + 0.001 {
        let x = LABEL + t / scale.seconds * (WIDTH - LABEL - 20.0);
        out.push_str(&format!(
            r#"<line class="tick" x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}"/><text class="tick-label" x="{x:.1}" y="{ty}">+{label}</text>"#,
            y0 = TOP - 4.0,
            y1 = height - 24.0,
            ty = height - 10.0,
            label = human(t),
        ));
        t += tick;
    }
    out
}

/// A small grouped bar chart of the last drills' RTO and RPO, with the objectives as dashed
/// lines; empty when there is fewer than one drill.
pub fn trend_chart(points: &[TrendPoint]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let (width, height, left, bottom) = (640.0, 220.0, 60.0, 40.0);
    let values = points.iter().flat_map(|p| {
        [
            p.rto.measured_seconds,
            p.rto.objective_seconds,
            p.rpo.measured_seconds,
            p.rpo.objective_seconds,
        ]
    });
    let max = values.flatten().fold(60.0_f64, f64::max) * 1.15;
    let plot_h = height - bottom - 10.0;
    let y = |s: f64| 10.0 + plot_h - s / max * plot_h;
    let slot = (width - left - 10.0) / points.len() as f64;
    let bar = (slot / 3.0).min(28.0);
    let mut svg = format!(
        r#"<svg class="trend" role="img" aria-label="RTO and RPO of the last drills" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    svg.push_str(&format!(
        r#"<line class="tick" x1="{left}" y1="{}" x2="{}" y2="{}"/><text class="tick-label" x="{}" y="16">{}</text>"#,
        y(0.0),
        width - 10.0,
        y(0.0),
        left - 6.0,
        human(max / 1.15),
    ));
    for (i, p) in points.iter().enumerate() {
        let x = left + i as f64 * slot + slot / 2.0 - bar;
        for (offset, class, m) in [(0.0, "trend-rto", &p.rto), (bar, "trend-rpo", &p.rpo)] {
            if let Some(got) = m.measured_seconds {
                let missed = if m.verdict == Verdict::Fail {
                    " missed"
                } else {
                    ""
                };
                svg.push_str(&format!(
                    r#"<rect class="{class}{missed}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"><title>{} {}: {}{}</title></rect>"#,
                    x + offset,
                    y(got),
                    (y(0.0) - y(got)).max(1.0),
                    if class == "trend-rto" { "RTO" } else { "RPO" },
                    when(&p.created_at),
                    human(got),
                    m.objective_seconds.map(|g| format!(" (objective {})", human(g))).unwrap_or_default(),
                ));
            }
            if let Some(goal) = m.objective_seconds {
                svg.push_str(&format!(
                    r#"<line class="{class}-objective" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
                    x + offset - 2.0,
                    y(goal),
                    x + offset + bar + 2.0,
                    y(goal),
                ));
            }
        }
        svg.push_str(&format!(
            r#"<text class="tick-label" x="{:.1}" y="{}">{}</text>"#,
            x + bar,
            height - bottom + 16.0,
            p.created_at.format("%m-%d %H:%M"),
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_few() {
        assert_eq!(tick_seconds(45.0), 5.0);
        assert_eq!(tick_seconds(1000.0), 120.0);
        assert_eq!(tick_seconds(5400.0), 600.0);
        assert!(100_000.0 / tick_seconds(100_000.0) <= 10.0);
    }
}
