//! `sys/policies/password/*`: create, read, list and delete password policies, and generate a
//! password from one (`sys/policies/password/:name/generate`). The language and the generator
//! are in [`crate::password_policy`]; policies are stored in the barrier at
//! `sys/password_policy/<name>` as `{"policy": "<text>"}`, as Vault stores them.

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use crate::password_policy::{self, PasswordPolicy, StoredPolicy, STORAGE_PREFIX};
use base64::Engine;
use serde_json::json;
use std::sync::Arc;

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("policies/password/?")
            .op(List, Sys::password_policy_list)
            .help("List password policies."),
        Path::new("policies/password/(?P<name>[^/]+)/generate")
            .op(Read, Sys::password_policy_generate)
            .help("Generate a password from a password policy."),
        Path::new("policies/password/(?P<name>[^/]+)")
            .field(
                "policy",
                Field::string("the policy, in HCL or JSON (optionally base64-encoded)"),
            )
            .op(Read, Sys::password_policy_read)
            .op(Update, Sys::password_policy_write)
            .op(Create, Sys::password_policy_write)
            .op(Delete, Sys::password_policy_delete)
            .help("Create, read or delete a password policy."),
    ]
}

fn name_of(c: &Call) -> Result<String> {
    let name = c.fields.str("name");
    if !password_policy::valid_name(name) {
        return Err(Error::bad("missing policy name"));
    }
    Ok(name.to_string())
}

impl Sys {
    /// The barrier view of stored password policies; also makes them visible to engines.
    fn password_policy_view(&self) -> Result<(crate::barrier::View, crate::barrier::View)> {
        let core = self.core()?;
        let root = core.root_view();
        Ok((root.sub(STORAGE_PREFIX), root))
    }

    async fn password_policy_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        let (view, _) = self.password_policy_view()?;
        let keys = view.list("").await?;
        Response::list_or_not_found(keys)
    }

    async fn password_policy_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = name_of(&c)?;
        let (view, _) = self.password_policy_view()?;
        let stored: StoredPolicy = view
            .get_json(&name)
            .await?
            .ok_or_else(|| Error::NotFoundMsg("policy does not exist".into()))?;
        Ok(Response::data(json!({ "policy": stored.policy })))
    }

    async fn password_policy_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = name_of(&c)?;
        let mut text = c.fields.str("policy").to_string();
        if text.trim().is_empty() {
            return Err(Error::bad("missing policy"));
        }
        // Vault accepts the policy base64-encoded too.
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            if let Ok(s) = String::from_utf8(decoded) {
                text = s;
            }
        }
        let policy = PasswordPolicy::parse(&text)
            .map_err(|e| Error::bad(format!("invalid password policy: {e}")))?;
        if policy.length < password_policy::MIN_LENGTH
            || policy.length > password_policy::MAX_LENGTH
        {
            return Err(Error::bad(format!(
                "passwords must be between {} and {} characters",
                password_policy::MIN_LENGTH,
                password_policy::MAX_LENGTH
            )));
        }
        // As Vault does: prove the policy can produce a password before accepting it.
        let sample = policy.generate();
        if !policy.accepts(&sample) {
            return Err(Error::bad(
                "invalid password policy: unable to generate a password from it",
            ));
        }
        let (view, _) = self.password_policy_view()?;
        view.put_json(&name, &StoredPolicy { policy: text }).await?;
        Ok(Response::default())
    }

    async fn password_policy_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = name_of(&c)?;
        let (view, _) = self.password_policy_view()?;
        view.delete(&name).await?;
        Ok(Response::default())
    }

    async fn password_policy_generate(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = name_of(&c)?;
        let (_, root) = self.password_policy_view()?;
        let (_, policy) = password_policy::load(&root, &name)
            .await?
            .ok_or_else(|| Error::NotFoundMsg("policy does not exist".into()))?;
        Ok(Response::data(json!({ "password": policy.generate() })))
    }
}
