//! Shared test helpers: an in-process simulator on 127.0.0.1:0 and real SDK clients for it.

#![allow(dead_code)]

use aws_sdk_drs::config::{Credentials, Region};
use drs_runbook::sim::{Sim, SimOptions};
use serde_json::Value;

/// A simulator serving on loopback in this process.
pub struct TestSim {
    pub sim: Sim,
    pub endpoint: String,
    http: reqwest::Client,
}

impl TestSim {
    /// Starts a simulator with the simulated clock at `speed`.
    pub async fn start(speed: f64) -> TestSim {
        Self::start_with(SimOptions {
            speed,
            state_file: None,
        })
        .await
    }

    pub async fn start_with(options: SimOptions) -> TestSim {
        let sim = Sim::new(options).expect("simulator starts");
        let addr = sim
            .clone()
            .spawn("127.0.0.1:0")
            .await
            .expect("simulator listens");
        TestSim {
            sim,
            endpoint: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn credentials(account: &str) -> Credentials {
        Credentials::new(account, "simulated-secret", None, None, "drs-runbook-tests")
    }

    /// A DRS client acting as `account` in `region`.
    pub fn drs(&self, account: &str, region: &str) -> aws_sdk_drs::Client {
        let config = aws_sdk_drs::Config::builder()
            .behavior_version(aws_sdk_drs::config::BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_drs::Client::from_conf(config)
    }

    /// A Route 53 client acting as `account` (Route 53 is global; it signs for us-east-1).
    pub fn route53(&self, account: &str) -> aws_sdk_route53::Client {
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_route53::Client::from_conf(config)
    }

    /// An ELBv2 client acting as `account` in `region`.
    pub fn elbv2(&self, account: &str, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        let config = aws_sdk_elasticloadbalancingv2::Config::builder()
            .behavior_version(aws_sdk_elasticloadbalancingv2::config::BehaviorVersion::latest())
            .region(aws_sdk_elasticloadbalancingv2::config::Region::new(
                region.to_string(),
            ))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Self::credentials(account))
            .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(config)
    }

    /// `GET` a control endpoint, e.g. `/_sim/stats`.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.endpoint))
            .send()
            .await
            .expect("control API answers")
            .json()
            .await
            .expect("control API answers JSON")
    }

    /// `POST` JSON to a control endpoint; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .json(body)
            .send()
            .await
            .expect("control API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Seeds the world from a runbook's TOML text.
    pub async fn seed(&self, toml: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/_sim/seed", self.endpoint))
            .body(toml.to_string())
            .send()
            .await
            .expect("control API answers");
        assert_eq!(response.status().as_u16(), 200, "seeding succeeds");
        response.json().await.expect("seed answers JSON")
    }

    /// Jumps the simulated clock forward.
    pub async fn skip(&self, seconds: f64) {
        let (status, _) = self
            .post(
                "/_sim/clock",
                &serde_json::json!({ "skip_seconds": seconds }),
            )
            .await;
        assert_eq!(status, 200);
    }

    /// How often `service:Operation` was called.
    pub async fn calls(&self, key: &str) -> u64 {
        self.get("/_sim/stats").await["calls"][key]
            .as_u64()
            .unwrap_or(0)
    }
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}
