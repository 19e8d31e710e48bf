//! The control API under `/_sim/` (JSON): a contract that outside test suites use.
//!
//! - `GET /_sim/stats`, `POST /_sim/faults`, `GET /_sim/faults`, `DELETE /_sim/faults`,
//!   `GET /_sim/clock`, `GET /_sim/world`, `POST /_sim/seed` as DESIGN section 9 specifies;
//! - `POST /_sim/clock` with `{"speed": N}` and/or `{"skip_seconds": S}`: an addition for
//!   rehearsals and tests that need to jump over long waits;
//! - `POST /_sim/health-check` with `{"id": "<health check ID>", "healthy": false}`: whether
//!   the endpoint of a Route 53 health check answers (what GetHealthCheckStatus reports,
//!   reversed when the check is inverted).

use axum::http::Method;
use serde::Deserialize;
use serde_json::json;

use super::faults::FaultsBody;
use super::{Reply, Sim, SimRequest};

pub fn handle(sim: &Sim, req: &SimRequest) -> Reply {
    let path = req.path.trim_end_matches('/');
    match (&req.method, path) {
        (&Method::GET, "/_sim/stats") => sim.with_state(|s| {
            Reply::json(
                200,
                &serde_json::to_value(&s.stats).expect("stats serialise"),
            )
        }),
        (&Method::GET, "/_sim/faults") => {
            sim.with_state(|s| Reply::json(200, &json!({ "faults": s.faults })))
        }
        (&Method::POST, "/_sim/faults") => {
            let body: FaultsBody = match serde_json::from_slice(&req.body) {
                Ok(body) => body,
                Err(e) => return bad_request(format!("invalid faults body: {e}")),
            };
            let count = body.faults.len();
            let mut faults = body.faults;
            sim.with_state(|s| {
                super::faults::stamp(&mut faults, s.clock.now());
                s.faults.extend(faults)
            });
            persist(sim);
            Reply::json(200, &json!({ "added": count }))
        }
        (&Method::DELETE, "/_sim/faults") => {
            sim.with_state(|s| s.faults.clear());
            persist(sim);
            Reply::json(200, &json!({ "cleared": true }))
        }
        (&Method::GET, "/_sim/clock") => sim.with_state(|s| clock_reply(s)),
        (&Method::POST, "/_sim/clock") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct ClockBody {
                speed: Option<f64>,
                skip_seconds: Option<f64>,
            }
            let body: ClockBody = match serde_json::from_slice(&req.body) {
                Ok(body) => body,
                Err(e) => return bad_request(format!("invalid clock body: {e}")),
            };
            if body.speed.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
                return bad_request("speed must be a positive number".to_string());
            }
            if body
                .skip_seconds
                .is_some_and(|s| !(s >= 0.0 && s.is_finite()))
            {
                return bad_request("skip_seconds must be zero or more".to_string());
            }
            let reply = sim.with_state(|s| {
                if let Some(speed) = body.speed {
                    s.clock.set_speed(speed);
                }
                if let Some(skip) = body.skip_seconds {
                    s.clock
                        .skip(chrono::Duration::microseconds((skip * 1e6) as i64));
                    let now = s.clock.now();
                    s.world.advance(now, &s.faults);
                }
                clock_reply(s)
            });
            persist(sim);
            reply
        }
        (&Method::GET, "/_sim/world") => sim.with_state(|s| {
            Reply::json(
                200,
                &serde_json::to_value(&s.world).expect("the world serialises"),
            )
        }),
        (&Method::POST, "/_sim/health-check") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct HealthBody {
                id: String,
                healthy: bool,
            }
            let body: HealthBody = match serde_json::from_slice(&req.body) {
                Ok(body) => body,
                Err(e) => return bad_request(format!("invalid health-check body: {e}")),
            };
            let found = sim.with_state(|s| {
                super::route53::set_endpoint_health(&mut s.world, &body.id, body.healthy)
            });
            if !found {
                return Reply::json(
                    404,
                    &json!({ "error": format!("no Route 53 health check {}", body.id) }),
                );
            }
            persist(sim);
            Reply::json(200, &json!({ "id": body.id, "healthy": body.healthy }))
        }
        (&Method::POST, "/_sim/seed") => {
            let Ok(text) = std::str::from_utf8(&req.body) else {
                return bad_request(
                    "the seed body must be a runbook's TOML text (UTF-8)".to_string(),
                );
            };
            match sim.seed_toml(text, "<seed request>") {
                Ok(summary) => Reply::json(
                    200,
                    &serde_json::to_value(summary).expect("summary serialises"),
                ),
                Err(e) => bad_request(e.to_string()),
            }
        }
        _ => Reply::json(
            404,
            &json!({ "error": format!("no control endpoint {} {}", req.method, req.path),
                     "hint": "the control API has /_sim/stats, /_sim/faults, /_sim/clock, /_sim/world, /_sim/seed and /_sim/health-check" }),
        ),
    }
}

fn clock_reply(s: &super::SimState) -> Reply {
    Reply::json(
        200,
        &json!({ "speed": s.clock.speed(), "now": s.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true) }),
    )
}

fn bad_request(message: String) -> Reply {
    Reply::json(400, &json!({ "error": message }))
}

fn persist(sim: &Sim) {
    if let Err(e) = sim.persist() {
        tracing::error!(error = %e, "simulator state not persisted");
    }
}
