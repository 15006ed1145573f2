//! `sys/leases/*` (and the legacy `sys/renew`, `sys/revoke*`): look up, renew, revoke and
//! list leases through the [`crate::expiration::LeaseManager`].

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Lease, Operation::*, Response};
use std::sync::Arc;

fn lease_id(c: &Call) -> Result<String> {
    let id = if c.fields.has("url_lease_id") {
        c.fields.str("url_lease_id")
    } else {
        c.fields.str("lease_id")
    };
    if id.is_empty() {
        return Err(Error::bad("lease_id must be specified"));
    }
    Ok(id.to_string())
}

pub fn paths() -> Vec<Path<Sys>> {
    let renew = |p: &str| {
        Path::new(p)
            .field("lease_id", Field::string("lease to renew"))
            .field("increment", Field::duration("requested extension"))
            .op(Update, Sys::lease_renew)
            .help("Renew a lease.")
    };
    let revoke = |p: &str| {
        Path::new(p)
            .field("lease_id", Field::string("lease to revoke"))
            .field("sync", Field::bool("wait for revocation").default(true))
            .op(Update, Sys::lease_revoke)
            .help("Revoke a lease.")
    };
    let prefix = |p: &str, force: bool| {
        Path::new(p)
            .op(Update, move |s: Arc<Sys>, c| async move {
                s.lease_revoke_prefix(c, force).await
            })
            .help(if force {
                "Remove every lease under a prefix, even if the backend cannot revoke it."
            } else {
                "Revoke every lease under a prefix."
            })
    };
    vec![
        Path::new("leases/lookup")
            .field("lease_id", Field::string("lease to look up"))
            .op(Update, Sys::lease_lookup)
            .help("Look up a lease."),
        Path::new("leases/lookup/(?P<prefix>.*)")
            .op(List, Sys::lease_list)
            .help("List lease ids under a prefix."),
        renew("leases/renew"),
        renew("leases/renew/(?P<url_lease_id>.+)"),
        renew("renew"),
        renew("renew/(?P<url_lease_id>.+)"),
        revoke("leases/revoke"),
        revoke("leases/revoke/(?P<url_lease_id>.+)"),
        revoke("revoke"),
        revoke("revoke/(?P<url_lease_id>.+)"),
        prefix("leases/revoke-prefix/(?P<prefix>.+)", false),
        prefix("revoke-prefix/(?P<prefix>.+)", false),
        prefix("leases/revoke-force/(?P<prefix>.+)", true),
        prefix("revoke-force/(?P<prefix>.+)", true),
        Path::new("leases/tidy")
            .op(Update, Sys::lease_tidy)
            .help("Remove index entries of leases that no longer exist."),
    ]
}

impl Sys {
    async fn lease_lookup(self: Arc<Self>, c: Call) -> Result<Response> {
        let e = self
            .core()?
            .active()?
            .leases
            .lookup(&lease_id(&c)?)
            .await?
            .ok_or_else(|| Error::bad("invalid lease"))?;
        Ok(Response::data(e.lookup_json()))
    }

    async fn lease_list(self: Arc<Self>, c: Call) -> Result<Response> {
        let keys = self
            .core()?
            .active()?
            .leases
            .list(c.fields.str("prefix"))
            .await?;
        Response::list_or_not_found(keys)
    }

    async fn lease_renew(self: Arc<Self>, c: Call) -> Result<Response> {
        let id = lease_id(&c)?;
        let e = self
            .core()?
            .active()?
            .leases
            .renew(&id, c.fields.duration("increment").as_secs())
            .await?;
        Ok(Response {
            lease: Some(Box::new(Lease {
                lease_id: e.lease_id,
                duration: e.ttl,
                renewable: e.renewable,
            })),
            ..Default::default()
        })
    }

    async fn lease_revoke(self: Arc<Self>, c: Call) -> Result<Response> {
        self.core()?
            .active()?
            .leases
            .revoke(&lease_id(&c)?, false)
            .await?;
        Ok(Response::default())
    }

    async fn lease_revoke_prefix(self: Arc<Self>, c: Call, force: bool) -> Result<Response> {
        self.core()?
            .active()?
            .leases
            .revoke_prefix(c.fields.str("prefix"), force)
            .await?;
        Ok(Response::default())
    }

    async fn lease_tidy(self: Arc<Self>, _c: Call) -> Result<Response> {
        self.core()?.active()?.leases.tidy().await?;
        Ok(Response::default().with_warning("tidy operation finished"))
    }
}
