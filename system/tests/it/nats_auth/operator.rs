//! A NATS operator, an account and a user made here, as `nsc` would make them, for a
//! `nats-server` in operator mode: the server's configuration (the operator's JWT, the
//! account's JWT preloaded, JetStream allowed to the account, and the system account
//! JetStream needs) and the user's credentials
//! file (its JWT and its NKEY seed). Each JWT is signed with the `nkeys` crate by the key
//! above it: the operator signs itself and the account, the account signs the user.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use nkeys::KeyPair;
use serde_json::{Value, json};

/// What a server in operator mode and its one user need.
pub(crate) struct Operator {
    /// The server's configuration file.
    pub(crate) server_config: String,
    /// The user's credentials file.
    pub(crate) creds: String,
    /// The user's NKEY seed, the secret of the credentials file.
    pub(crate) seed: String,
}

impl Operator {
    pub(crate) fn new() -> Operator {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let system = KeyPair::new_account();
        let user = KeyPair::new_user();
        let operator_jwt = jwt(
            &operator,
            &operator,
            "ingest-operator",
            json!({"type": "operator", "version": 2}),
        );
        let unlimited = json!({
            "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1,
            "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
        });
        let account_jwt = jwt(
            &operator,
            &account,
            "ingest",
            json!({
                "limits": unlimited,
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            }),
        );
        let system_jwt = jwt(
            &operator,
            &system,
            "SYS",
            json!({"type": "account", "version": 2}),
        );
        let user_jwt = jwt(
            &account,
            &user,
            "processor",
            json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2,
            }),
        );
        let seed = user.seed().expect("a user key has a seed");
        let server_config = format!(
            "operator: \"{operator_jwt}\"\nsystem_account: \"{system}\"\n\
             resolver: MEMORY\nresolver_preload: {{\n  \"{account}\": \"{account_jwt}\"\n  \
             \"{system}\": \"{system_jwt}\"\n}}\n",
            account = account.public_key(),
            system = system.public_key(),
        );
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        );
        Operator {
            server_config,
            creds,
            seed,
        }
    }
}

/// A JWT about `subject`, issued and signed by `issuer`, with the NATS claims `nats`.
fn jwt(issuer: &KeyPair, subject: &KeyPair, name: &str, nats: Value) -> String {
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "jti": format!("{:X}", issued ^ u64::from(name.len() as u32)),
        "iat": issued,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject.public_key(),
        "nats": nats,
    });
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).expect("signing works");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}
