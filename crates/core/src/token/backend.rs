//! `auth/token/*`: create, look up, renew and revoke tokens, and token roles, with Vault's paths
//! and answer shapes.

use super::{TokenEntry, TokenParams, TokenStore, TokenType};
use crate::error::{Error, Result};
use crate::framework::{Call, Caller, Field, Path, PathBackend};
use crate::logical::{Auth, Operation::*, Response};
use crate::ttl::TtlLimits;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct TokenBackend {
    pub store: Arc<TokenStore>,
    /// The system's limits; the token mount's tuning applies on top ([`TtlLimits::for_mount`]).
    pub limits: TtlLimits,
    /// Where a token's entity gets its policies (`identity_policies` in lookups).
    pub identity: Arc<crate::identity::IdentityStore>,
}

/// A token role: constraints on tokens created through `create/:role`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TokenRole {
    pub name: String,
    #[serde(default)]
    pub allowed_policies: Vec<String>,
    #[serde(default)]
    pub disallowed_policies: Vec<String>,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub period: u64,
    #[serde(default = "yes")]
    pub renewable: bool,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub path_suffix: String,
    #[serde(default)]
    pub token_ttl: u64,
    #[serde(default)]
    pub token_max_ttl: u64,
    #[serde(default)]
    pub allowed_entity_aliases: Vec<String>,
    #[serde(default)]
    pub token_type: String,
}

fn yes() -> bool {
    true
}

impl TokenRole {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": [],
            "disallowed_policies_glob": [],
            "orphan": self.orphan,
            "period": self.period,
            "token_period": self.period,
            "renewable": self.renewable,
            "explicit_max_ttl": self.explicit_max_ttl,
            "token_explicit_max_ttl": self.explicit_max_ttl,
            "path_suffix": self.path_suffix,
            "token_type": if self.token_type.is_empty() { "default-service" } else { &self.token_type },
            "allowed_entity_aliases": self.allowed_entity_aliases,
            "token_bound_cidrs": [],
            "token_no_default_policy": false,
            "token_num_uses": 0,
        })
    }
}

fn caller(call: &Call) -> Result<&Caller> {
    call.caller.as_ref().ok_or(Error::PermissionDenied)
}

fn auth_json(token: &str, e: &TokenEntry) -> Auth {
    Auth {
        client_token: token.to_string(),
        accessor: e.accessor.clone(),
        policies: e.policies.clone(),
        token_policies: e.policies.clone(),
        identity_policies: None,
        metadata: if e.meta.is_empty() {
            None
        } else {
            Some(e.meta.clone())
        },
        lease_duration: e.creation_ttl,
        renewable: e.renewable,
        entity_id: e.entity_id.clone(),
        token_type: e.type_name().into(),
        orphan: e.orphan,
        mfa_requirement: None,
        num_uses: e.num_uses.max(0) as u64,
    }
}

fn renew_auth(e: &TokenEntry) -> Auth {
    let mut a = auth_json("", e);
    a.lease_duration = e.ttl_remaining(crate::util::unix_now()) as u64;
    a
}

/// Sorted, deduplicated policy names.
pub fn sanitize_policies(mut p: Vec<String>, add_default: bool) -> Vec<String> {
    p.retain(|s| !s.is_empty());
    for s in p.iter_mut() {
        *s = s.trim().to_lowercase();
    }
    if add_default && !p.iter().any(|s| s == "root") && !p.iter().any(|s| s == "default") {
        p.push("default".into());
    }
    p.sort();
    p.dedup();
    p
}

impl TokenBackend {
    pub fn backend(self) -> PathBackend<TokenBackend> {
        let create_fields = |p: Path<TokenBackend>| {
            p.field("id", Field::string("token value (root only)"))
                .field("policies", Field::list("policies for the token"))
                .field("meta", Field::map("metadata"))
                .field("no_parent", Field::bool("create an orphan"))
                .field(
                    "no_default_policy",
                    Field::bool("do not add the default policy"),
                )
                .field(
                    "renewable",
                    Field::bool("whether the token can be renewed").default(true),
                )
                .field("ttl", Field::duration("initial TTL"))
                .field("lease", Field::duration("deprecated alias of ttl"))
                .field("type", Field::string("service or batch"))
                .field("explicit_max_ttl", Field::duration("hard max TTL"))
                .field("display_name", Field::string("display name"))
                .field("num_uses", Field::int("maximum uses"))
                .field("period", Field::duration("renewal period"))
                .field("entity_alias", Field::string("entity alias"))
        };
        let paths = vec![
            create_fields(Path::new("create"))
                .op(Update, |b: Arc<Self>, c| async move {
                    b.create(c, None, false).await
                })
                .help("Create a token."),
            create_fields(Path::new("create-orphan"))
                .op(Update, |b: Arc<Self>, c| async move {
                    b.create(c, None, true).await
                })
                .help("Create an orphan token."),
            create_fields(
                Path::new("create/(?P<role_name>[^/]+)").field("role_name", Field::string("role")),
            )
            .op(Update, |b: Arc<Self>, c| async move {
                let role = c.fields.str("role_name").to_string();
                b.create(c, Some(role), false).await
            })
            .help("Create a token against a role."),
            Path::new("lookup")
                .field("token", Field::string("token to look up"))
                .op(Update, Self::lookup)
                .op(Read, Self::lookup_self)
                .help("Look up a token."),
            Path::new("lookup/(?P<urltoken>.+)").op(Read, Self::lookup),
            Path::new("lookup-self")
                .field("token", Field::string("ignored"))
                .op(Read, Self::lookup_self)
                .op(Update, Self::lookup_self),
            Path::new("lookup-accessor")
                .field("accessor", Field::string("accessor"))
                .op(Update, Self::lookup_accessor),
            Path::new("lookup-accessor/(?P<urlaccessor>.+)").op(Update, Self::lookup_accessor),
            Path::new("renew")
                .field("token", Field::string("token"))
                .field("increment", Field::duration("requested extension"))
                .op(Update, Self::renew),
            Path::new("renew/(?P<urltoken>.+)")
                .field("increment", Field::duration("requested extension"))
                .op(Update, Self::renew),
            Path::new("renew-self")
                .field("increment", Field::duration("requested extension"))
                .op(Update, Self::renew_self),
            Path::new("renew-accessor")
                .field("accessor", Field::string("accessor"))
                .field("increment", Field::duration("requested extension"))
                .op(Update, Self::renew_accessor),
            Path::new("revoke")
                .field("token", Field::string("token"))
                .op(Update, Self::revoke),
            Path::new("revoke/(?P<urltoken>.+)").op(Update, Self::revoke),
            Path::new("revoke-self").op(Update, Self::revoke_self),
            Path::new("revoke-orphan")
                .field("token", Field::string("token"))
                .op(Update, Self::revoke_orphan),
            Path::new("revoke-orphan/(?P<urltoken>.+)").op(Update, Self::revoke_orphan),
            Path::new("revoke-accessor")
                .field("accessor", Field::string("accessor"))
                .op(Update, Self::revoke_accessor),
            Path::new("revoke-accessor/(?P<urlaccessor>.+)").op(Update, Self::revoke_accessor),
            Path::new("accessors/?").op(List, Self::list_accessors),
            Path::new("roles/?").op(List, Self::list_roles),
            Path::new("roles/(?P<role_name>[^/]+)")
                .field("allowed_policies", Field::list("allowed policies"))
                .field("disallowed_policies", Field::list("disallowed policies"))
                .field("orphan", Field::bool("tokens are orphans"))
                .field("period", Field::duration("period"))
                .field("token_period", Field::duration("period"))
                .field("renewable", Field::bool("renewable").default(true))
                .field("explicit_max_ttl", Field::duration("explicit max TTL"))
                .field(
                    "token_explicit_max_ttl",
                    Field::duration("explicit max TTL"),
                )
                .field("path_suffix", Field::string("path suffix"))
                .field("token_ttl", Field::duration("ttl"))
                .field("token_max_ttl", Field::duration("max ttl"))
                .field("allowed_entity_aliases", Field::list("entity aliases"))
                .field("token_type", Field::string("token type"))
                .op(Read, Self::read_role)
                .op(Update, Self::write_role)
                .op(Create, Self::write_role)
                .op(Delete, Self::delete_role)
                .help("Token roles."),
            Path::new("tidy").op(Update, |_b: Arc<Self>, _c| async move {
                Ok(Response::default().with_warning("tidy operation successfully started"))
            }),
        ];
        PathBackend::new(self, paths)
            .sudo(&[
                "revoke-orphan",
                "revoke-orphan/*",
                "accessors",
                "accessors/",
            ])
            .help("The token store: create, look up, renew and revoke tokens.")
    }

    async fn create(
        self: Arc<Self>,
        c: Call,
        role_name: Option<String>,
        orphan_path: bool,
    ) -> Result<Response> {
        let me = caller(&c)?;
        let parent = &me.entry;
        let is_root = parent.is_root();
        let f = &c.fields;
        let role = match &role_name {
            Some(r) => Some(
                self.store
                    .view()
                    .get_json::<TokenRole>(&format!("roles/{r}"))
                    .await?
                    .ok_or_else(|| Error::bad(format!("unknown role {r}")))?,
            ),
            None => None,
        };
        if parent.batch {
            return Err(Error::bad("batch tokens cannot create more tokens"));
        }
        // Its children would escape the count (a batch child, or one with uses of its own).
        if parent.num_uses > 0 {
            return Err(Error::bad(
                "restricted use token cannot generate child tokens",
            ));
        }
        let batch = Self::wants_batch(f, role.as_ref())?;
        let no_parent =
            f.bool("no_parent") || orphan_path || role.as_ref().is_some_and(|r| r.orphan);
        // As Vault: sudo on the path of this very request (or root) is what lets a caller make
        // orphans or periodic tokens of its own choosing.
        let is_sudo = is_root
            || me
                .acl
                .capabilities(&format!("{}{}", c.mount.route_prefix(), c.path))
                .iter()
                .any(|cap| cap == "sudo");
        if f.bool("no_parent") && !orphan_path && role.is_none() && !is_sudo {
            return Err(Error::bad(
                "root or sudo privileges required to create orphan token",
            ));
        }
        if f.has("period") && f.duration("period").as_secs() > 0 && !is_sudo {
            return Err(Error::bad(
                "root or sudo privileges required to create periodic token",
            ));
        }
        if f.has("id") && !f.str("id").is_empty() && !is_root {
            return Err(Error::bad(
                "root or sudo privileges required to specify token id",
            ));
        }
        let add_default = !f.bool("no_default_policy");
        let mut policies = f.strings("policies");
        if policies.is_empty() && role.is_none() {
            policies = parent.policies.clone();
        }
        if let Some(r) = &role {
            if policies.is_empty() {
                policies = r.allowed_policies.clone();
            }
            let allowed = sanitize_policies(r.allowed_policies.clone(), true);
            for p in sanitize_policies(policies.clone(), false) {
                if r.disallowed_policies.contains(&p) {
                    return Err(Error::bad(format!(
                        "token policies ({p}) contains disallowed policies"
                    )));
                }
                if !r.allowed_policies.is_empty() && !allowed.contains(&p) {
                    return Err(Error::bad(format!(
                        "token policies ({p}) must be subset of the role's allowed policies"
                    )));
                }
            }
        }
        let mut policies = sanitize_policies(policies, add_default);
        if !add_default {
            policies
                .retain(|p| p != "default" || f.strings("policies").iter().any(|x| x == "default"));
        }
        if !is_root && role.is_none() {
            let parent_set = sanitize_policies(parent.policies.clone(), true);
            if policies.iter().any(|p| !parent_set.contains(p)) {
                return Err(Error::bad("child policies must be subset of parent"));
            }
        }
        if policies.is_empty() {
            policies = vec!["default".into()];
        }
        let mut warnings = Vec::new();
        let role_period = role.as_ref().map(|r| r.period).unwrap_or(0);
        let asked_period = f.duration("period").as_secs();
        let period = match (asked_period, role_period) {
            (0, r) => r,
            (a, 0) => a,
            (a, r) => {
                let lesser = a.min(r);
                warnings.push(format!("Period specified both during creation call and in role; using the lesser value of {lesser} seconds"));
                lesser
            }
        };
        let role_max = role.as_ref().map(|r| r.explicit_max_ttl).unwrap_or(0);
        let asked_max = f.duration("explicit_max_ttl").as_secs();
        let explicit_max = match (asked_max, role_max) {
            (0, r) => r,
            (a, 0) => a,
            (a, r) => {
                let lesser = a.min(r);
                warnings.push(format!("Explicit max TTL specified both during creation call and in role; using the lesser value of {lesser} seconds"));
                lesser
            }
        };
        let mut ttl = if f.has("ttl") {
            f.duration("ttl").as_secs()
        } else {
            f.duration("lease").as_secs()
        };
        if ttl == 0 {
            ttl = role.as_ref().map(|r| r.token_ttl).unwrap_or(0);
        }
        let (ttl, period) = if ttl == 0 && period == 0 && policies.iter().any(|p| p == "root") {
            // A root token asked for without a TTL does not expire (only root can make one),
            // unless an explicit max says otherwise.
            (explicit_max, 0)
        } else {
            let granted =
                self.limits
                    .for_mount(&c.mount.config)
                    .calculate(ttl, period, explicit_max);
            warnings.extend(granted.warnings);
            (granted.ttl, granted.period)
        };
        let num_uses = f.int("num_uses");
        if num_uses < 0 {
            return Err(Error::bad("number of uses cannot be negative"));
        }
        let meta: BTreeMap<String, String> = f
            .map("meta")
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let display = f.str("display_name").trim().to_lowercase();
        let display_name = if display.is_empty() {
            "token".to_string()
        } else {
            format!("token-{display}")
        };
        let mut path = format!("{}create", c.mount.route_prefix());
        if let Some(r) = &role {
            path = format!("{path}/{}", r.name);
            if !r.path_suffix.is_empty() {
                path = format!("{path}/{}", r.path_suffix);
            }
        } else if orphan_path {
            path.push_str("-orphan");
        }
        let renewable = !batch && f.bool("renewable") && role.as_ref().is_none_or(|r| r.renewable);
        let (token, entry) = self
            .store
            .create(TokenParams {
                id: Some(f.str("id").to_string()).filter(|s| !s.is_empty()),
                parent_hash: if no_parent {
                    String::new()
                } else {
                    parent.hash.clone()
                },
                policies,
                path,
                meta,
                display_name,
                num_uses,
                ttl,
                explicit_max_ttl: explicit_max,
                period,
                renewable,
                // A child of a token with an entity belongs to the same entity (as in Vault).
                entity_id: if no_parent {
                    String::new()
                } else {
                    parent.entity_id.clone()
                },
                role: role.map(|r| r.name).unwrap_or_default(),
                bound_cidrs: Vec::new(),
                batch,
            })
            .await?;
        Ok(Response {
            auth: Some(Box::new(auth_json(&token, &entry))),
            warnings,
            ..Default::default()
        })
    }

    /// Whether `create` makes a batch token: the request's `type`, unless the role decides
    /// (`service`/`batch`) or gives the default (`default-batch`); as Vault's token store, a
    /// batch token refuses what only a stored token can honour.
    fn wants_batch(f: &crate::framework::FieldData, role: Option<&TokenRole>) -> Result<bool> {
        let mut asked = f.str("type").to_string();
        if let Some(r) = role {
            match TokenType::parse(&r.token_type) {
                Some(TokenType::Default | TokenType::DefaultService) => {}
                Some(TokenType::DefaultBatch) if asked.is_empty() => asked = "batch".into(),
                Some(TokenType::DefaultBatch) => {}
                Some(TokenType::Service) => asked = "service".into(),
                Some(TokenType::Batch) => asked = "batch".into(),
                None => {
                    return Err(Error::bad(format!(
                        "role being used for token creation contains invalid token type {:?}",
                        r.token_type
                    )))
                }
            }
        }
        match asked.as_str() {
            "" | "service" => Ok(false),
            "batch" => {
                let set = |k: &str| f.has(k) && f.duration(k).as_secs() != 0;
                let bad = if set("explicit_max_ttl") {
                    Some("explicit_max_ttl")
                } else if f.int("num_uses") != 0 {
                    Some("num_uses")
                } else if set("period") {
                    Some("period")
                } else {
                    None
                };
                match bad {
                    Some(b) => Err(Error::bad(format!("batch tokens cannot have {b:?} set"))),
                    None => Ok(true),
                }
            }
            _ => Err(Error::bad("invalid 'token_type' value")),
        }
    }

    /// Refuses what a batch token cannot do (`what`: "renewed", "revoked").
    fn refuse_batch(e: &TokenEntry, what: &str) -> Result<()> {
        if e.batch {
            return Err(Error::bad(format!("batch tokens cannot be {what}")));
        }
        Ok(())
    }

    /// The token named in the body or URL.
    fn token_arg(c: &Call) -> Result<String> {
        let t = if c.fields.has("urltoken") {
            c.fields.str("urltoken")
        } else {
            c.fields.str("token")
        };
        if t.is_empty() {
            return Err(Error::bad("missing token to look up"));
        }
        Ok(t.to_string())
    }

    fn accessor_arg(c: &Call) -> Result<String> {
        let a = if c.fields.has("urlaccessor") {
            c.fields.str("urlaccessor")
        } else {
            c.fields.str("accessor")
        };
        if a.is_empty() {
            return Err(Error::bad("missing accessor"));
        }
        Ok(a.to_string())
    }

    async fn lookup(self: Arc<Self>, c: Call) -> Result<Response> {
        let t = Self::token_arg(&c)?;
        let e = self
            .store
            .lookup(&t)
            .await?
            .ok_or_else(|| Error::Forbidden("bad token".into()))?;
        self.lookup_answer(&e, &t).await
    }

    async fn lookup_self(self: Arc<Self>, c: Call) -> Result<Response> {
        let me = caller(&c)?;
        self.lookup_answer(&me.entry, &me.token).await
    }

    /// A lookup's answer: the token, and as Vault the policies its entity brings, its own and
    /// its groups' (`identity_policies`, only when there are any).
    async fn lookup_answer(&self, e: &TokenEntry, token: &str) -> Result<Response> {
        let mut data = e.lookup_json(token);
        if !e.entity_id.is_empty() {
            let policies = self.identity.policies(&e.entity_id).await?;
            if !policies.is_empty() {
                data["identity_policies"] = serde_json::json!(policies);
            }
        }
        Ok(Response::data(data))
    }

    async fn lookup_accessor(self: Arc<Self>, c: Call) -> Result<Response> {
        let a = Self::accessor_arg(&c)?;
        let e = self
            .store
            .lookup_accessor(&a)
            .await?
            .ok_or_else(|| Error::bad("invalid accessor"))?;
        self.lookup_answer(&e, "").await
    }

    async fn renew(self: Arc<Self>, c: Call) -> Result<Response> {
        let t = Self::token_arg(&c)?;
        let e = self
            .store
            .lookup(&t)
            .await?
            .ok_or_else(|| Error::bad("token not found"))?;
        Self::refuse_batch(&e, "renewed")?;
        let hash = e.hash.clone();
        let e = self
            .store
            .renew(
                &hash,
                c.fields.duration("increment").as_secs(),
                self.limits.for_mount(&c.mount.config),
            )
            .await?;
        Ok(Response {
            auth: Some(Box::new(Auth {
                client_token: t,
                ..renew_auth(&e)
            })),
            ..Default::default()
        })
    }

    async fn renew_self(self: Arc<Self>, c: Call) -> Result<Response> {
        let me = caller(&c)?;
        Self::refuse_batch(&me.entry, "renewed")?;
        let e = self
            .store
            .renew(
                &me.entry.hash,
                c.fields.duration("increment").as_secs(),
                self.limits.for_mount(&c.mount.config),
            )
            .await?;
        Ok(Response {
            auth: Some(Box::new(Auth {
                client_token: me.token.clone(),
                ..renew_auth(&e)
            })),
            ..Default::default()
        })
    }

    async fn renew_accessor(self: Arc<Self>, c: Call) -> Result<Response> {
        let a = Self::accessor_arg(&c)?;
        let hash = self
            .store
            .hash_for_accessor(&a)
            .await?
            .ok_or_else(|| Error::bad("invalid accessor"))?;
        let e = self
            .store
            .renew(
                &hash,
                c.fields.duration("increment").as_secs(),
                self.limits.for_mount(&c.mount.config),
            )
            .await?;
        Ok(Response {
            auth: Some(Box::new(renew_auth(&e))),
            ..Default::default()
        })
    }

    async fn revoke(self: Arc<Self>, c: Call) -> Result<Response> {
        let t = Self::token_arg(&c)?;
        if let Some(e) = self.store.lookup(&t).await? {
            Self::refuse_batch(&e, "revoked")?;
        }
        self.store.revoke_tree(&self.store.hash(&t)).await?;
        Ok(Response::default())
    }

    async fn revoke_self(self: Arc<Self>, c: Call) -> Result<Response> {
        let me = caller(&c)?;
        Self::refuse_batch(&me.entry, "revoked")?;
        self.store.revoke_tree(&me.entry.hash).await?;
        Ok(Response::default())
    }

    async fn revoke_orphan(self: Arc<Self>, c: Call) -> Result<Response> {
        let t = Self::token_arg(&c)?;
        let e = self
            .store
            .lookup(&t)
            .await?
            .ok_or_else(|| Error::bad("token to revoke not found"))?;
        Self::refuse_batch(&e, "revoked")?;
        self.store.revoke_orphan(&e.hash).await?;
        Ok(Response::default())
    }

    async fn revoke_accessor(self: Arc<Self>, c: Call) -> Result<Response> {
        let a = Self::accessor_arg(&c)?;
        let hash = self
            .store
            .hash_for_accessor(&a)
            .await?
            .ok_or_else(|| Error::bad("invalid accessor"))?;
        self.store.revoke_tree(&hash).await?;
        Ok(Response::default())
    }

    async fn list_accessors(self: Arc<Self>, _c: Call) -> Result<Response> {
        Ok(Response::list(self.store.accessors().await?))
    }

    async fn list_roles(self: Arc<Self>, _c: Call) -> Result<Response> {
        let roles = self.store.view().list("roles/").await?;
        Response::list_or_not_found(roles)
    }

    async fn read_role(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("role_name");
        match self
            .store
            .view()
            .get_json::<TokenRole>(&format!("roles/{name}"))
            .await?
        {
            Some(r) => Ok(Response::data(r.to_json())),
            None => Err(Error::NotFound),
        }
    }

    async fn write_role(self: Arc<Self>, c: Call) -> Result<Response> {
        let f = &c.fields;
        let name = f.str("role_name").to_string();
        let key = format!("roles/{name}");
        let mut r = self
            .store
            .view()
            .get_json::<TokenRole>(&key)
            .await?
            .unwrap_or(TokenRole {
                name: name.clone(),
                renewable: true,
                ..Default::default()
            });
        if f.has("allowed_policies") {
            r.allowed_policies = sanitize_policies(f.strings("allowed_policies"), false);
        }
        if f.has("disallowed_policies") {
            r.disallowed_policies = sanitize_policies(f.strings("disallowed_policies"), false);
        }
        if f.has("orphan") {
            r.orphan = f.bool("orphan");
        }
        let secs = |names: &[&str], current: u64| {
            names
                .iter()
                .find(|k| f.has(k))
                .map(|k| f.duration(k).as_secs())
                .unwrap_or(current)
        };
        r.period = secs(&["period", "token_period"], r.period);
        r.explicit_max_ttl = secs(
            &["explicit_max_ttl", "token_explicit_max_ttl"],
            r.explicit_max_ttl,
        );
        r.token_ttl = secs(&["token_ttl"], r.token_ttl);
        r.token_max_ttl = secs(&["token_max_ttl"], r.token_max_ttl);
        if f.has("renewable") {
            r.renewable = f.bool("renewable");
        }
        if f.has("path_suffix") {
            r.path_suffix = f.str("path_suffix").to_string();
        }
        if f.has("allowed_entity_aliases") {
            r.allowed_entity_aliases = f.strings("allowed_entity_aliases");
        }
        if f.has("token_type") {
            r.token_type = match f.str("token_type") {
                "" | "default" => "default-service".into(),
                t if TokenType::parse(t).is_some() => t.to_string(),
                t => return Err(Error::bad(format!("invalid 'token_type' value {t:?}"))),
            };
        }
        if TokenType::parse(&r.token_type) == Some(TokenType::Batch) {
            let refuse = |what: &str| {
                Err(Error::bad(format!(
                    "'token_type' cannot be 'batch' when role is set to generate {what}"
                )))
            };
            if !r.orphan {
                return refuse("non-orphan tokens");
            }
            if r.period != 0 {
                return refuse("periodic tokens");
            }
            if r.renewable {
                return refuse("renewable tokens");
            }
            if r.explicit_max_ttl != 0 {
                return refuse("tokens with an explicit max TTL");
            }
        }
        self.store.view().put_json(&key, &r).await?;
        Ok(Response::default())
    }

    async fn delete_role(self: Arc<Self>, c: Call) -> Result<Response> {
        self.store
            .view()
            .delete(&format!("roles/{}", c.fields.str("role_name")))
            .await?;
        Ok(Response::default())
    }
}
