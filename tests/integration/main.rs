//! The one integration test binary (so the heavy AWS SDK crates link once).
//! Every module drives the real SDK clients or the CLI against the simulator on loopback.

mod support;

mod runbook_validate;
mod sim_control;
mod sim_route53_elbv2;
mod sim_awscli_xml;
mod moto_parity;
