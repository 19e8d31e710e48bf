//! `history --trend`: the RTO and RPO of a runbook's last drills against the objectives each
//! drill ran under (read from the runbook text stored with it, since objectives change).

use super::model::{self, Objectives, TrendPoint};
use super::{ReportError, human, when};
use crate::store::{self, Database, Operation, RunFilter, RunSummary};

/// The last `limit` drills of `runbook`, newest first, with their objectives.
pub async fn drills(
    db: &Database,
    runbook: &str,
    limit: u32,
) -> Result<Vec<(RunSummary, Objectives)>, ReportError> {
    let mut conn = db.pool().acquire().await?;
    let filter = RunFilter {
        runbook: Some(runbook.to_owned()),
        operation: Some(Operation::Drill),
        limit: Some(limit),
        ..RunFilter::default()
    };
    let summaries = store::runs::list(&mut conn, &filter).await?;
    let mut out = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let run = store::runs::get(&mut conn, &summary.id).await?;
        let (objectives, _) = Objectives::of_text(&run.runbook_text, &run.runbook_path);
        out.push((summary, objectives));
    }
    Ok(out)
}

/// The trend points of a runbook's last drills, oldest first.
pub async fn points(
    db: &Database,
    runbook: &str,
    limit: u32,
) -> Result<Vec<TrendPoint>, ReportError> {
    Ok(model::trend(drills(db, runbook, limit).await?))
}

/// `12m05s` or `-`.
fn figure(seconds: Option<f64>) -> String {
    seconds.map(human).unwrap_or_else(|| "-".to_owned())
}

/// The trend as a plain-text table, one drill a line, oldest first.
pub fn table(runbook: &str, points: &[TrendPoint]) -> String {
    if points.is_empty() {
        return format!(
            "no drill of runbook {runbook} yet (hint: `drs-runbook drill <RUNBOOK> --yes` runs one; `drs-runbook history` lists the runs)\n"
        );
    }
    let mut out = format!(
        "{:<36}  {:<20}  {:<11}  {:>9} {:>9} {:<12}  {:>9} {:>9} {:<12}\n",
        "drill", "started", "status", "RTO", "objective", "", "RPO", "objective", ""
    );
    for p in points {
        out.push_str(&format!(
            "{:<36}  {:<20}  {:<11}  {:>9} {:>9} {:<12}  {:>9} {:>9} {:<12}\n",
            p.run_id,
            when(&p.created_at),
            p.status,
            figure(p.rto.measured_seconds),
            figure(p.rto.objective_seconds),
            p.rto.verdict.as_str(),
            figure(p.rpo.measured_seconds),
            figure(p.rpo.objective_seconds),
            p.rpo.verdict.as_str(),
        ));
    }
    let failed = points
        .iter()
        .filter(|p| p.rto.verdict == model::Verdict::Fail || p.rpo.verdict == model::Verdict::Fail)
        .count();
    out.push_str(&format!(
        "{} drill(s), {failed} missed an objective\n",
        points.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{Measure, Verdict};
    use chrono::TimeZone;

    fn point(id: &str, rto: f64, rto_goal: f64) -> TrendPoint {
        TrendPoint {
            run_id: id.to_owned(),
            created_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap(),
            status: "succeeded".to_owned(),
            rto: Measure {
                objective_seconds: Some(rto_goal),
                measured_seconds: Some(rto),
                verdict: Verdict::of(Some(rto_goal), Some(rto)),
            },
            rpo: Measure {
                objective_seconds: None,
                measured_seconds: Some(60.0),
                verdict: Verdict::NoObjective,
            },
        }
    }

    #[test]
    fn the_table_shows_each_drill_against_its_objective() {
        let text = table(
            "reporting",
            &[point("a", 600.0, 1200.0), point("b", 1500.0, 1200.0)],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[1].starts_with('a')
                && lines[1].contains("10m00s")
                && lines[1].contains("20m00s")
                && lines[1].contains("pass"),
            "{text}"
        );
        assert!(
            lines[2].contains("25m00s") && lines[2].contains("fail"),
            "{text}"
        );
        assert!(lines[2].contains("no objective"), "{text}");
        assert_eq!(lines[3], "2 drill(s), 1 missed an objective");
    }

    #[test]
    fn no_drill_yet_says_how_to_run_one() {
        assert!(table("reporting", &[]).contains("drs-runbook drill"));
    }
}
