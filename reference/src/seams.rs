//! The seams of the reference, gathered: the points where its behaviour may vary, each a trait
//! whose default methods are the plain behaviour the spec asks for.
//!
//! | seam | trait | what passes through it |
//! |---|---|---|
//! | token validation | `auth::Authenticate` | a request's token, to the user it names |
//! | lifecycle | `lifecycle::Lifecycle` | the upgrade, the WebSocket settings, the shutdown |
//! | inbound | `router::Routing` | every frame read, to its handler or its refusal |
//! | agent | `agent::Agent` | the directive and every event of a run, before it is stamped |
//! | outbound | `broadcast::Outbound` | every frame on its way to a tab, run frames once stamped |
//! | the bus | `bus::Channels` | every run frame published on, and received from, Redis |
//!
//! [`Seams::plain`] serves the spec. The server is built from [`Seams`] in one place,
//! `server::serve`; with the `faults` feature, `faults::seams` decorates them there.

use std::sync::Arc;

use crate::Config;
use crate::agent::{self, Agent};
use crate::auth::{Authenticate, Authenticator};
use crate::broadcast::{self, Outbound};
use crate::bus::{self, Channels};
use crate::lifecycle::{self, Lifecycle};
use crate::router::{self, Routing};

/// One implementation of every seam.
pub(crate) struct Seams {
    pub(crate) auth: Arc<dyn Authenticate>,
    pub(crate) lifecycle: Arc<dyn Lifecycle>,
    pub(crate) routing: Arc<dyn Routing>,
    pub(crate) agent: Arc<dyn Agent>,
    pub(crate) outbound: Arc<dyn Outbound>,
    pub(crate) channels: Arc<dyn Channels>,
}

impl Seams {
    /// The seams as the spec asks: the reference router.
    pub(crate) fn plain(config: &Config) -> Seams {
        Seams {
            auth: Arc::new(Authenticator::new(config)),
            lifecycle: Arc::new(lifecycle::Plain),
            routing: Arc::new(router::Plain),
            agent: Arc::new(agent::Plain),
            outbound: Arc::new(broadcast::Plain),
            channels: Arc::new(bus::Plain),
        }
    }
}
