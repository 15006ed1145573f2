//! OTP roles: `creds`, `verify` (single use, also when raced), `lookup`, `config/zeroaddress`.

use super::*;

async fn otp_env() -> Env {
    let env = Env::new().await;
    env.ok(
        Update,
        "ssh/roles/otp",
        json!({"key_type": "otp", "default_user": "root", "allowed_users": "admin",
               "cidr_list": "10.0.0.0/8", "exclude_cidr_list": "10.9.0.0/16", "port": 2222}),
    )
    .await;
    env
}

#[tokio::test]
async fn creds_give_a_single_use_password_with_a_lease() {
    let env = otp_env().await;
    let r = env
        .resp(Update, "ssh/creds/otp", json!({"ip": "10.1.2.3"}))
        .await;
    let lease = r.lease.as_ref().expect("a lease");
    assert!(
        lease.lease_id.starts_with("ssh/creds/otp/"),
        "{}",
        lease.lease_id
    );
    assert!(!lease.renewable);
    let d = body(&r);
    assert_eq!(d["key_type"], "otp");
    assert_eq!(d["username"], "root");
    assert_eq!(d["ip"], "10.1.2.3");
    assert_eq!(d["port"], 2222);
    let otp = d["key"].as_str().unwrap().to_string();
    assert_eq!(otp.len(), 36);

    // verify needs no token, and works once.
    let v = env
        .req_as(None, Update, "ssh/verify", json!({"otp": otp}))
        .await
        .unwrap();
    assert_eq!(
        body(&v),
        json!({"username": "root", "ip": "10.1.2.3", "role_name": "otp"})
    );
    let again = env
        .req_as(None, Update, "ssh/verify", json!({"otp": otp}))
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.to_string()),
        (400, "OTP not found".into())
    );
    // The echo request answers without touching anything.
    let echo = env
        .req_as(
            None,
            Update,
            "ssh/verify",
            json!({"otp": "verify-echo-request"}),
        )
        .await
        .unwrap();
    assert_eq!(body(&echo), json!({"message": "verify-echo-response"}));
}

#[tokio::test]
async fn concurrent_verifications_of_one_otp_succeed_exactly_once() {
    let env = Arc::new(otp_env().await);
    for _ in 0..5 {
        let d = env
            .ok(Update, "ssh/creds/otp", json!({"ip": "10.0.0.1"}))
            .await;
        let otp = d["key"].as_str().unwrap().to_string();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let env = env.clone();
                let otp = otp.clone();
                tokio::spawn(async move {
                    env.req_as(None, Update, "ssh/verify", json!({"otp": otp}))
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e.to_string(), "OTP not found"),
            }
        }
        assert_eq!(ok, 1);
    }
}

#[tokio::test]
async fn revoking_the_lease_voids_the_password() {
    let env = otp_env().await;
    let r = env
        .resp(Update, "ssh/creds/otp", json!({"ip": "10.0.0.1"}))
        .await;
    let otp = body(&r)["key"].as_str().unwrap().to_string();
    let lease_id = r.lease.as_ref().unwrap().lease_id.clone();
    env.ok(Update, "sys/leases/revoke", json!({"lease_id": lease_id}))
        .await;
    env.bad(Update, "ssh/verify", json!({"otp": otp}), "OTP not found")
        .await;
}

#[tokio::test]
async fn creds_refuse_users_addresses_and_roles_they_do_not_cover() {
    let env = otp_env().await;
    env.bad(Update, "ssh/creds/otp", json!({}), "Missing ip")
        .await;
    env.bad(
        Update,
        "ssh/creds/nope",
        json!({"ip": "10.0.0.1"}),
        "Role \"nope\" not found",
    )
    .await;
    env.bad(
        Update,
        "ssh/creds/otp",
        json!({"ip": "10.0.0.1", "username": "eve"}),
        "Username is not present",
    )
    .await;
    env.bad(Update, "ssh/creds/otp", json!({"ip": "nope"}), "Invalid IP")
        .await;
    env.bad(
        Update,
        "ssh/creds/otp",
        json!({"ip": "192.168.0.1"}),
        "Error validating IP: IP does not belong to role",
    )
    .await;
    env.bad(
        Update,
        "ssh/creds/otp",
        json!({"ip": "10.9.1.1"}),
        "IP does not belong to role",
    )
    .await;
    let d = env
        .ok(
            Update,
            "ssh/creds/otp",
            json!({"ip": "10.0.0.1", "username": "admin"}),
        )
        .await;
    assert_eq!(d["username"], "admin");
    // A CA role gives no OTP.
    env.ok(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    env.ok(
        Update,
        "ssh/roles/ca",
        json!({"key_type": "ca", "allow_user_certificates": true, "default_user": "root", "cidr_list": "10.0.0.0/8"}),
    )
    .await;
    env.ok(Update, "ssh/config/zeroaddress", json!({"roles": "ca"}))
        .await;
    env.bad(
        Update,
        "ssh/creds/ca",
        json!({"ip": "10.0.0.1"}),
        "role key type 'ca' does not generate credentials",
    )
    .await;
}

#[tokio::test]
async fn zero_address_roles_and_lookup() {
    let env = otp_env().await;
    env.ok(
        Update,
        "ssh/roles/any",
        json!({"key_type": "otp", "default_user": "u"}),
    )
    .await;
    // No CIDRs: no address, until the role is a zero-address role.
    env.bad(
        Update,
        "ssh/creds/any",
        json!({"ip": "1.2.3.4"}),
        "IP does not belong to role",
    )
    .await;
    env.fails(Read, "ssh/config/zeroaddress", json!({}), 404, "")
        .await;
    env.bad(
        Update,
        "ssh/config/zeroaddress",
        json!({"roles": ""}),
        "Missing roles",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/zeroaddress",
        json!({"roles": "ghost"}),
        "Role \"ghost\" does not exist",
    )
    .await;
    assert_eq!(
        env.resp(Update, "ssh/config/zeroaddress", json!({"roles": "any"}))
            .await
            .http_status(),
        204
    );
    assert_eq!(
        env.ok(Read, "ssh/config/zeroaddress", json!({})).await,
        json!({"roles": ["any"]})
    );
    let d = env
        .ok(Update, "ssh/creds/any", json!({"ip": "1.2.3.4"}))
        .await;
    assert_eq!(d["ip"], "1.2.3.4");

    assert_eq!(
        env.ok(Update, "ssh/lookup", json!({"ip": "10.1.1.1"}))
            .await,
        json!({"roles": ["otp", "any"]})
    );
    assert_eq!(
        env.ok(Update, "ssh/lookup", json!({"ip": "1.2.3.4"})).await,
        json!({"roles": ["any"]})
    );
    env.bad(Update, "ssh/lookup", json!({}), "Missing ip").await;
    env.bad(Update, "ssh/lookup", json!({"ip": "x"}), "Invalid IP")
        .await;

    // Deleting the role takes it off the list; deleting the list is 204.
    env.ok(Delete, "ssh/roles/any", json!({})).await;
    assert_eq!(
        env.ok(Read, "ssh/config/zeroaddress", json!({})).await,
        json!({"roles": []})
    );
    assert_eq!(
        env.resp(Delete, "ssh/config/zeroaddress", json!({}))
            .await
            .http_status(),
        204
    );
    assert_eq!(
        env.ok(Update, "ssh/lookup", json!({"ip": "1.2.3.4"})).await,
        json!({"roles": null})
    );
}
