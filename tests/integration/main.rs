//! The one integration test binary (so the heavy AWS SDK crates link once).
//! Every module drives the real SDK clients or the CLI against the simulator on loopback.

mod support;

mod actions;
mod audit_report;
mod boot_order;
mod budget;
mod crash;
mod disaster;
mod dns_routing;
mod doctor;
mod drill_target_group;
mod engine;
mod failback;
mod fence;
mod hardening;
mod health_gate;
mod json_contract;
mod launch_settings;
mod moto_parity;
mod notify_https;
mod postgres;
mod recovery_plans;
mod runbook_validate;
mod selection;
mod shell;
mod sim_awscli_drs;
mod sim_awscli_xml;
mod sim_control;
mod sim_drs;
mod sim_ec2;
mod sim_route53_elbv2;
