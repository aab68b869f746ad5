//! The demo's cast: three tenants from the producers hookline is built for,
//! and their endpoints, each backed by a local sink that behaves in one way
//! (healthy, slow, flaky, down, gone now and then).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde::Serialize;

use super::DemoError;
use crate::ops::{EndpointInput, Ops};
use crate::sign::Secret;
use crate::sink::{self, SinkHandle, SinkOptions};

/// How a demo endpoint's receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Answers 200 at once.
    Healthy,
    /// Answers 200 after about 800 ms.
    Slow,
    /// Answers 503 to about 30 % of requests.
    Flaky,
    /// Nothing listens: connection refused.
    Down,
    /// Answers 410 Gone once in a while, which disables the endpoint.
    GoneSometimes,
}

impl Behaviour {
    /// A few words for the summary table.
    pub fn describe(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Slow => "slow 800ms",
            Behaviour::Flaky => "flaky 30% 503",
            Behaviour::Down => "down",
            Behaviour::GoneSometimes => "410 sometimes",
        }
    }

    fn sink_options(self, secret: &Secret) -> Option<SinkOptions> {
        let base = SinkOptions {
            secrets: vec![secret.clone()],
            ..SinkOptions::default()
        };
        match self {
            Behaviour::Healthy => Some(base),
            Behaviour::Slow => Some(SinkOptions {
                latency: Duration::from_millis(800),
                ..base
            }),
            Behaviour::Flaky => Some(SinkOptions {
                fail_rate: 0.3,
                status: 503,
                ..base
            }),
            Behaviour::GoneSometimes => Some(SinkOptions {
                fail_rate: 0.02,
                status: 410,
                ..base
            }),
            Behaviour::Down => None,
        }
    }
}

/// One endpoint of the script, before it exists.
struct Role {
    tenant: &'static str,
    name: &'static str,
    behaviour: Behaviour,
    topics: &'static [&'static str],
    description: &'static str,
}

/// Which tenant publishes which topics, and who listens.
pub const TENANTS: &[(&str, &[&str])] = &[
    (
        "appliance-catalog",
        &["product.price_changed", "product.status_changed"],
    ),
    (
        "saas-marketplace",
        &["subscription.cancelled", "product.price_changed"],
    ),
    ("property-manager", &["resident.update", "resident.delete"]),
];

const ROLES: &[Role] = &[
    Role {
        tenant: "appliance-catalog",
        name: "storefront-sync",
        behaviour: Behaviour::Healthy,
        topics: &["product.*"],
        description: "a retailer's shop keeps prices and stock in step",
    },
    Role {
        tenant: "appliance-catalog",
        name: "price-comparison",
        behaviour: Behaviour::Slow,
        topics: &["product.price_changed"],
        description: "a comparison site, slow to answer",
    },
    Role {
        tenant: "saas-marketplace",
        name: "billing",
        behaviour: Behaviour::Flaky,
        topics: &["subscription.*"],
        description: "a vendor's billing service, failing now and then",
    },
    Role {
        tenant: "saas-marketplace",
        name: "legacy-crm",
        behaviour: Behaviour::Down,
        topics: &["subscription.cancelled", "product.price_changed"],
        description: "a CRM whose server is gone",
    },
    Role {
        tenant: "property-manager",
        name: "resident-portal",
        behaviour: Behaviour::Healthy,
        topics: &["resident.*"],
        description: "the residents' app",
    },
    Role {
        tenant: "property-manager",
        name: "records-archive",
        behaviour: Behaviour::GoneSometimes,
        topics: &["resident.delete", "resident.update"],
        description: "an archive being retired: answers 410 Gone now and then",
    },
];

/// One endpoint of the running demo and its receiver.
pub struct Player {
    pub tenant: &'static str,
    pub name: &'static str,
    pub endpoint_id: String,
    pub behaviour: Behaviour,
    /// `None` for the endpoint nobody listens on.
    pub sink: Option<SinkHandle>,
}

/// Creates the tenants, starts a sink per endpoint, and registers the
/// endpoints and their subscriptions through `ops`.
pub async fn assemble(ops: &Ops) -> Result<Vec<Player>, DemoError> {
    for (tenant, _) in TENANTS {
        ops.add_tenant(tenant).await?;
    }
    let mut players = Vec::new();
    for role in ROLES {
        let secret = Secret::generate().map_err(|e| DemoError::Setup(e.to_string()))?;
        let (url, sink) = match role.behaviour.sink_options(&secret) {
            Some(options) => {
                let sink = sink::start(options).await?;
                (sink.url(), Some(sink))
            }
            None => (format!("http://{}/hooks", refused_address()?), None),
        };
        let endpoint = ops
            .add_endpoint(&EndpointInput {
                tenant: role.tenant.to_string(),
                name: role.name.to_string(),
                url,
                secret: Some(secret.to_string()),
                description: Some(role.description.to_string()),
                ..EndpointInput::default()
            })
            .await?;
        for topic in role.topics {
            ops.add_subscription(&endpoint.id, topic, None).await?;
        }
        players.push(Player {
            tenant: role.tenant,
            name: role.name,
            endpoint_id: endpoint.id,
            behaviour: role.behaviour,
            sink,
        });
    }
    Ok(players)
}

/// A local address nothing listens on: bind a free port, then let it go.
/// (Another process could take it meanwhile; on a demo machine it won't.)
fn refused_address() -> Result<SocketAddr, DemoError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let address = listener.local_addr()?;
    drop(listener);
    Ok(address)
}
