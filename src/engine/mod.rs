//! The engine: the pure state machine ([`machine`]), the planner ([`plan`]) and the driver that
//! executes steps, persists every transition and polls.

pub mod machine;
pub mod plan;
