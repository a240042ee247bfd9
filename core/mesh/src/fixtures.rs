//! Answers in Headscale's and Tailscale's documented shapes (built from
//! their sources: `proto/headscale/v1/*.proto` of 0.26–0.28 and
//! `ipn/ipnstate/ipnstate.go`), for the fixture servers that stand in for
//! daemons that cannot be installed here. A fleet of four: the
//! controller (tagged `tag:oshal-controller`, 100.64.0.1), nodes `n1`
//! (online, direct) and `n2` (offline), and alice's `laptop`.

/// `GET /api/v1/node` of 0.26 and 0.27 (`forcedTags`, `validTags`,
/// `invalidTags`).
pub const HEADSCALE_0_26_NODES: &str = include_str!("../fixtures/headscale-0.26-nodes.json");
/// `GET /api/v1/node` of 0.28 (`tags`; tagged nodes under
/// `tagged-devices`).
pub const HEADSCALE_0_28_NODES: &str = include_str!("../fixtures/headscale-0.28-nodes.json");
/// `GET /api/v1/user`.
pub const HEADSCALE_USERS: &str = include_str!("../fixtures/headscale-users.json");
/// The tailnet policy (HuJSON): nodes reach the controller's API (8080)
/// and Redis (6379); `group:ops` reaches everything.
pub const POLICY: &str = include_str!("../fixtures/policy.hujson");
/// `GET /localapi/v0/status` on the controller's host.
pub const TAILSCALE_STATUS: &str = include_str!("../fixtures/tailscale-status.json");
